/**
 * Guests' addresses on all of the agent's managed networks, for its event stream: while a
 * network exists, its lease file is watched (dnsmasq rewrites it at every DHCP
 * acknowledgement: the new address is known at once) and the neighbour table is read
 * every `everyMs` (one `ip neigh` for every bridge: IPv6 and addresses a guest set itself).
 * A MAC is a guest's through the network's ports (ports.ts), so each guest's cards are
 * reported with their addresses — `{ guest, nics }`, whenever that changes, and
 * `nics: []` once the guest has no card on any network (it stopped).
 *
 * It follows the Networks manager's hooks: a network applied is watched, a removed one
 * no longer, and its ports changing (a guest started or stopped) maps MACs again.
 */
import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import type { NicAddresses } from "../../domain/types";
import { addressBook, bookKey, readLeaseFile, readNeighbours, type AddressBook, type Neighbour } from "./addresses";
import type { Lease } from "./dnsmasq";
import type { NetHost, Networks } from "./manager";
import { bridgeName } from "./nft";
import type { Port } from "./ports";

/**
 * How long a change of the lease file settles before it is read: dnsmasq empties the file and
 * then writes every lease again, so a read at the first change could find it empty.
 */
const LEASES_SETTLE_MS = 10;
/** Fewer leases than before (perhaps a read in the middle of a rewrite) are believed when a second read this much later agrees. */
const FEWER_LEASES_CONFIRM_MS = 50;

/** One guest's cards on managed networks and their addresses (an event line of the agent). */
export interface GuestAddresses {
  guest: string;
  nics: NicAddresses[];
}

/**
 * Pure: each guest with cards (ports) on `network`, each card with the addresses `book`
 * has for its MAC (IPv4 and IPv6 apart), in the order of the ports.
 */
export function nicsByGuest(network: string, ports: readonly Port[], book: AddressBook): Map<string, NicAddresses[]> {
  const guests = new Map<string, NicAddresses[]>();
  for (const port of ports) {
    const mac = port.mac.toLowerCase();
    const ips = book.get(mac) ?? [];
    const nic: NicAddresses = { mac, network, ipv4: ips.filter((ip) => !ip.includes(":")), ipv6: ips.filter((ip) => ip.includes(":")) };
    guests.set(port.guest, [...(guests.get(port.guest) ?? []), nic]);
  }
  return guests;
}

/**
 * What the watch needs of the Networks manager: its networks, their ports, its hooks, and
 * where each network's taps are (`bridgeOf`; a stand-in without it has the agent's own bridges only).
 */
export type WatchedNetworks = Pick<Networks, "list" | "ports" | "events"> & Partial<Pick<Networks, "bridgeOf">>;

interface Followed {
  watcher: fs.FSWatcher | null;
  leaseFile: string;
  bridge: string;
  leases: Lease[];
  neighbours: Neighbour[];
  bookKey: string;
  /** A read of the lease file is due (its change settling). */
  due: NodeJS.Timeout | null;
  /** This network's part: guest → its cards here. */
  part: Map<string, NicAddresses[]>;
}

export class AddressWatch extends EventEmitter<{ addresses: [GuestAddresses] }> {
  private readonly followed = new Map<string, Followed>();
  /** Each guest's cards on every network, as last reported (guests with none are not kept). */
  private readonly current = new Map<string, NicAddresses[]>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private readonly hooks = {
    applied: (id: string) => this.guard(() => this.follow(id)),
    removed: (id: string) => this.guard(() => this.unfollow(id)),
    ports: (id: string) => this.guard(() => this.remap(id)),
  };

  /** `dir`: the networks' folder (the manager's), each network's lease file at `<dir>/<id>/leases`. */
  constructor(
    private readonly networks: WatchedNetworks,
    private readonly dir: string,
    private readonly host: NetHost,
    private readonly everyMs = 1000,
  ) {
    super();
  }

  /** Follows every network there is, and from now on those applied and removed. */
  start(): this {
    this.networks.events.on("applied", this.hooks.applied);
    this.networks.events.on("removed", this.hooks.removed);
    this.networks.events.on("ports", this.hooks.ports);
    for (const network of this.networks.list()) this.follow(network.id);
    this.timer = setInterval(() => void this.poll(), this.everyMs);
    this.timer.unref();
    void this.poll();
    return this;
  }

  stop(): void {
    this.networks.events.off("applied", this.hooks.applied);
    this.networks.events.off("removed", this.hooks.removed);
    this.networks.events.off("ports", this.hooks.ports);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const f of this.followed.values()) {
      f.watcher?.close();
      if (f.due) clearTimeout(f.due);
    }
    this.followed.clear();
  }

  /** A guest's cards on managed networks with their addresses ([] when it has none). */
  of(guest: string): NicAddresses[] {
    return this.current.get(guest) ?? [];
  }

  /** Every guest with cards on managed networks, as the event stream's first lines. */
  all(): GuestAddresses[] {
    return [...this.current].map(([guest, nics]) => ({ guest, nics }));
  }

  /** Starts following a network (again: nothing changes). */
  private follow(id: string): void {
    if (this.followed.has(id)) return this.readLeases(id);
    const folder = path.join(this.dir, id);
    // A bridged network's neighbours are on the host's bridge (a LAN has no lease file here: none is read).
    const f: Followed = { watcher: null, leaseFile: path.join(folder, "leases"), bridge: this.networks.bridgeOf?.(id) ?? bridgeName(id), leases: [], neighbours: [], bookKey: "", due: null, part: new Map() };
    this.followed.set(id, f);
    try {
      // dnsmasq writes the lease file at each acknowledgement; its folder is watched, so a
      // replaced file is seen too.
      f.watcher = fs.watch(folder, (_event, name) => {
        if (name === "leases") this.readSoon(id, f, LEASES_SETTLE_MS);
      });
      f.watcher.on("error", () => {}); // the folder went: the network is being removed
    } catch (err) {
      console.error(`agent: the lease file of network ${id} cannot be watched (its addresses show at the next look):`, err);
    }
    this.readLeases(id);
  }

  private unfollow(id: string): void {
    const f = this.followed.get(id);
    if (!f) return;
    f.watcher?.close();
    if (f.due) clearTimeout(f.due);
    this.followed.delete(id);
    this.report(f.part.keys());
  }

  /** Reads the network's lease file in `ms` (once, however many changes come meanwhile). */
  private readSoon(id: string, f: Followed, ms: number, confirming = false): void {
    if (f.due) return;
    f.due = setTimeout(() => {
      f.due = null;
      this.guard(() => this.readLeases(id, confirming));
    }, ms);
    f.due.unref();
  }

  private readLeases(id: string, confirming = false): void {
    const f = this.followed.get(id);
    if (!f) return;
    const leases = readLeaseFile(f.leaseFile);
    // Leases go rarely (released, expired); fewer of them may be a read in the middle of dnsmasq's rewrite.
    if (leases.length < f.leases.length && !confirming) return this.readSoon(id, f, FEWER_LEASES_CONFIRM_MS, true);
    f.leases = leases;
    this.update(id, f, false);
  }

  /** The network's ports changed: its MACs are mapped to guests again. */
  private remap(id: string): void {
    const f = this.followed.get(id);
    if (f) this.update(id, f, true);
  }

  /** Every bridge's neighbours in one look, and every lease file again (a missed change is caught here). */
  private async poll(): Promise<void> {
    if (this.polling || this.followed.size === 0) return;
    this.polling = true;
    try {
      const all = await readNeighbours(this.host, null);
      for (const [id, f] of this.followed) {
        f.neighbours = all.filter((n) => n.dev === f.bridge);
        this.readLeases(id);
      }
    } catch (err) {
      console.error("agent: reading managed networks' addresses failed:", err);
    } finally {
      this.polling = false;
    }
  }

  /** The network's book from its leases and neighbours; its part mapped again when the book (or, `force`, its ports) changed. */
  private update(id: string, f: Followed, force: boolean): void {
    const book = addressBook(f.leases, f.neighbours);
    const key = bookKey(book);
    if (key === f.bookKey && !force) return;
    f.bookKey = key;
    const before = [...f.part.keys()];
    f.part = nicsByGuest(id, this.networks.ports(id), book);
    this.report(new Set([...before, ...f.part.keys()]));
  }

  /** Each of `guests` whose cards (on every network) changed is told. */
  private report(guests: Iterable<string>): void {
    for (const guest of guests) {
      const nics = [...this.followed.values()].flatMap((f) => f.part.get(guest) ?? []);
      const known = this.current.get(guest) ?? [];
      if (JSON.stringify(nics) === JSON.stringify(known)) continue;
      if (nics.length) this.current.set(guest, nics);
      else this.current.delete(guest);
      this.emit("addresses", { guest, nics });
    }
  }

  /** A hook of the manager never fails its caller: what goes wrong here is logged. */
  private guard(work: () => void): void {
    try {
      work();
    } catch (err) {
      console.error("agent: following managed networks' addresses failed:", err);
    }
  }
}
