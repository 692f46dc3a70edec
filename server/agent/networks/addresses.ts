/**
 * Guests' addresses on a managed network, with no agent inside the guest: dnsmasq's lease
 * file (IPv4 by MAC, rewritten on every lease) and the bridge's neighbour table (what the
 * guest actually uses, IPv6 too). `watchAddresses` calls back as soon as the lease file
 * changes, and looks at the neighbour table every `everyMs`, reporting only changes.
 * (The agent follows all its networks at once with watch.ts, which asks the neighbour
 * table once per tick for every bridge.)
 */
import fs from "node:fs";
import path from "node:path";
import { parseLeases, type Lease } from "./dnsmasq";
import type { NetHost } from "./manager";

/** MAC → its addresses, sorted (IPv4 before IPv6). */
export type AddressBook = Map<string, string[]>;

/** A line of `ip -j neigh`. */
export interface Neighbour {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

/**
 * Pure: the addresses of each MAC from its leases and the neighbours it answered for (not
 * failed or unanswered ones; link-local IPv6 says nothing a person can use).
 */
export function addressBook(leases: readonly Lease[], neighbours: readonly Neighbour[]): AddressBook {
  const book: AddressBook = new Map();
  const add = (mac: string, ip: string) => {
    const list = book.get(mac) ?? [];
    if (!list.includes(ip)) list.push(ip);
    book.set(mac, list);
  };
  for (const lease of leases) add(lease.mac.toLowerCase(), lease.ip);
  for (const n of neighbours) {
    if (!n.lladdr || n.state?.some((s) => s === "FAILED" || s === "INCOMPLETE")) continue;
    if (n.dst.toLowerCase().startsWith("fe80:")) continue;
    add(n.lladdr.toLowerCase(), n.dst);
  }
  for (const [mac, list] of book) book.set(mac, list.sort((a, b) => Number(a.includes(":")) - Number(b.includes(":")) || a.localeCompare(b)));
  return book;
}

/** The leases in a lease file ([] while there is none). */
export function readLeaseFile(leaseFile: string): Lease[] {
  try {
    return parseLeases(fs.readFileSync(leaseFile, "utf8"));
  } catch {
    return [];
  }
}

/** The neighbour table of one bridge, or of every device (`bridge` null: each line names its `dev`); [] when it cannot be read. */
export async function readNeighbours(host: NetHost, bridge: string | null): Promise<Neighbour[]> {
  const out = await host.run("ip", ["-j", "neigh", "show", ...(bridge ? ["dev", bridge] : [])]).catch(() => "[]");
  try {
    return JSON.parse(out || "[]") as Neighbour[];
  } catch {
    return [];
  }
}

/** The addresses of each MAC now: its lease, and the neighbours it answered for. */
export async function readAddresses(host: NetHost, bridge: string, leaseFile: string): Promise<AddressBook> {
  return addressBook(readLeaseFile(leaseFile), await readNeighbours(host, bridge));
}

/** A book as a text that is equal for equal books (to report changes only). */
export const bookKey = (book: AddressBook): string => JSON.stringify([...book].sort(([a], [b]) => a.localeCompare(b)));

/** Follows a network's addresses until stopped; `onChange` gets the whole book whenever it changes. */
export function watchAddresses(host: NetHost, bridge: string, leaseFile: string, onChange: (book: AddressBook) => void, everyMs = 1000): { stop(): void } {
  let last = "";
  let stopped = false;
  let busy = false;
  /** A change came while a look was under way: look once more when it ends. */
  let again = false;
  const look = async () => {
    if (stopped) return;
    if (busy) return void (again = true);
    busy = true;
    try {
      const book = await readAddresses(host, bridge, leaseFile);
      const key = bookKey(book);
      if (key !== last && !stopped) {
        last = key;
        onChange(book);
      }
    } finally {
      busy = false;
      if (again) {
        again = false;
        void look();
      }
    }
  };
  // dnsmasq rewrites the lease file on every lease: its folder is watched (the file is replaced),
  // and the file read a moment after a change (dnsmasq empties it before writing it again).
  const watcher = fs.watch(path.dirname(leaseFile), (_event, name) => {
    if (name === path.basename(leaseFile)) setTimeout(() => void look(), 10);
  });
  watcher.on("error", () => {}); // the folder went (the network was removed): the timer still looks until stopped
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
