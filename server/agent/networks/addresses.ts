/**
 * Guests' addresses on a managed network, with no agent inside the guest: dnsmasq's lease
 * file (IPv4 by MAC, rewritten on every lease) and the bridge's neighbour table (what the
 * guest actually uses, IPv6 too). `watchAddresses` calls back as soon as the lease file
 * changes, and looks at the neighbour table every `everyMs`, reporting only changes.
 */
import fs from "node:fs";
import path from "node:path";
import { parseLeases } from "./dnsmasq";
import type { NetHost } from "./manager";

/** MAC → its addresses, sorted (IPv4 before IPv6). */
export type AddressBook = Map<string, string[]>;

interface Neighbour {
  dst: string;
  lladdr?: string;
  state?: string[];
}

/** The addresses of each MAC now: its lease, and the neighbours it answered for (not failed ones). */
export async function readAddresses(host: NetHost, bridge: string, leaseFile: string): Promise<AddressBook> {
  const book: AddressBook = new Map();
  const add = (mac: string, ip: string) => {
    const list = book.get(mac) ?? [];
    if (!list.includes(ip)) list.push(ip);
    book.set(mac, list);
  };
  const leases = fs.existsSync(leaseFile) ? parseLeases(fs.readFileSync(leaseFile, "utf8")) : [];
  for (const lease of leases) add(lease.mac, lease.ip);
  const neighbours = JSON.parse((await host.run("ip", ["-j", "neigh", "show", "dev", bridge]).catch(() => "[]")) || "[]") as Neighbour[];
  for (const n of neighbours) {
    if (!n.lladdr || n.state?.some((s) => s === "FAILED" || s === "INCOMPLETE")) continue;
    // Link-local IPv6 addresses say nothing a person can use.
    if (n.dst.toLowerCase().startsWith("fe80:")) continue;
    add(n.lladdr.toLowerCase(), n.dst);
  }
  for (const [mac, list] of book) book.set(mac, list.sort((a, b) => Number(a.includes(":")) - Number(b.includes(":")) || a.localeCompare(b)));
  return book;
}

/** Follows a network's addresses until stopped; `onChange` gets the whole book whenever it changes. */
export function watchAddresses(host: NetHost, bridge: string, leaseFile: string, onChange: (book: AddressBook) => void, everyMs = 1000): { stop(): void } {
  let last = "";
  let stopped = false;
  let busy = false;
  const look = async () => {
    if (stopped || busy) return;
    busy = true;
    try {
      const book = await readAddresses(host, bridge, leaseFile);
      const key = JSON.stringify([...book].sort());
      if (key !== last && !stopped) {
        last = key;
        onChange(book);
      }
    } finally {
      busy = false;
    }
  };
  // dnsmasq rewrites the lease file on every lease: its folder is watched (the file is replaced).
  const watcher = fs.watch(path.dirname(leaseFile), (_event, name) => {
    if (name === path.basename(leaseFile)) void look();
  });
  const timer = setInterval(() => void look(), everyMs);
  void look();
  return {
    stop() {
      stopped = true;
      watcher.close();
      clearInterval(timer);
    },
  };
}
