/**
 * The agent's managed networks: for each, a Linux bridge with the gateway's address, its
 * nftables table (nft.ts) and a dnsmasq for DHCP and DNS (dnsmasq.ts), and a folder
 * `<networks>/<id>/` with its spec, dnsmasq's configuration, pid file and leases.
 *
 * `apply` makes a network or brings it in line with a new spec, step by step, and undoes
 * what it did if a step fails (a new network leaves nothing; a changed one gets its old
 * spec back). It is idempotent: dnsmasq keeps running when its configuration is unchanged.
 * `adopt` applies every kept spec again after the agent's restart, keeping what still runs.
 * A subnet that overlaps another network or a route of the host is refused, naming it.
 * `remove` takes everything away (refused while guests' cards are on the network).
 *
 * Guests' cards: `plug` gives each NIC of a starting guest a port (ports.ts: its tap, its
 * address, its host name), kept in the network's ports.json, and renders the network's
 * rules and dnsmasq's host entries again (one `nft -f`, a SIGHUP); the launcher makes the
 * taps and joins them to the bridge. `unplug` takes a stopped guest's ports away again.
 * Every change takes its turn, so two guests starting at once never share an address.
 * Commands go through `host`, so a test can run the whole manager inside a network
 * namespace.
 *
 * A bridged network is the host's own bridge (an admin's br0, with the LAN on it): apply
 * checks that it is there and is a bridge, and adds only the ports' MAC checks (nft.ts);
 * no address, no dnsmasq, no NAT; remove takes those away and never the bridge. A card
 * on it may have a VLAN (plug refuses one unless the bridge filters VLANs); the launcher
 * makes the tap that VLAN's untagged port. A network's kind never changes.
 * IPv6 (NAT and isolated, `ipv6: true`): the bridge gets the /64's ::1 (network-plan.ts
 * planIpv6) and dnsmasq advertises the prefix (dnsmasq.ts).
 */
import { execFile } from "node:child_process";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { NetworkCounters, NetworkState } from "../../agent-protocol";
import { GuesthouseError } from "../../domain/errors";
import { clashOf, parseHostBridge, planIpv4, planIpv6, type HostRoute, type Ipv4Plan } from "../../domain/network-plan";
import { hostPortsOf, overlappingForward, type NetworkFirewall, type NetworkForward } from "../../domain/network-rules";
import type { NicBandwidth } from "../../domain/types";
import type { ForwardPolicy } from "../config";
import { Turns } from "../turns";
import { dnsmasqConfig, parseLeases, type Lease } from "./dnsmasq";
import { bridgeName, removalOf, rulesetOf, tableName } from "./nft";
import { hostLabel } from "../../domain/names";
import { chooseAddress, hostsFileOf, tapName, uniqueLabel, type Port } from "./ports";

export type ManagedNetwork = RoutedNetwork | BridgedNetwork;

/** Guests on the host's own bridge (an admin's, such as br0), so on its LAN. */
export interface BridgedNetwork {
  id: string;
  kind: "bridged";
  /** The host's bridge; the agent neither makes nor removes it. */
  bridge: string;
}

/** A network of the agent's own bridge: NAT or isolated. */
export interface RoutedNetwork {
  id: string;
  kind: "nat" | "isolated";
  subnet: string;
  /** "auto": the upper half of the subnet's hosts; null: no DHCP (isolated networks only). */
  dhcp: { start: string; end: string } | "auto" | null;
  domain: string;
  reservations?: Array<{ mac: string; ip: string; name: string }>;
  /** Rules and defaults (server/domain/network-rules.ts); none given: DEFAULT_FIREWALL. */
  firewall?: NetworkFirewall;
  /** Port forwards from the host to cards of the network (NAT networks only). */
  forwards?: NetworkForward[];
  /** IPv6 beside IPv4: a unique local /64 from the id, advertised for SLAAC. */
  ipv6?: boolean;
}

/** A starting guest's NIC on a managed network, as plug takes it. */
export interface NicToPlug {
  /** The card's position among the guest's NICs (names its tap). */
  index: number;
  mac: string;
  network: string;
  /** Its VLAN on a bridged network's VLAN-filtering bridge. */
  vlan?: number;
  /** Its bandwidth limits. */
  bandwidth?: NicBandwidth;
}

/** A plugged NIC: its port, the bridge its tap joins, and its VLAN there (if any). */
export interface PluggedNic extends Port {
  index: number;
  bridge: string;
  vlan?: number;
}

/** What apply made or found: the bridge, and for the agent's own networks their plan and dnsmasq. */
export interface AppliedNetwork {
  bridge: string;
  plan: Ipv4Plan | null;
  dnsmasqPid: number | null;
}

export interface NetHost {
  /** Runs a command to its end; rejects with its output when it fails. */
  run(command: string, args: string[]): Promise<string>;
  /** Whether a process runs. */
  alive(pid: number): boolean;
}

const ID = /^[a-z0-9]{1,40}$/;

/**
 * Whether a process runs: there, and not a zombie (a daemon that ended, its parent gone,
 * waits to be reaped by PID 1, which in some containers never does).
 */
export function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Runs a command (no shell) to its end: its output, or an error carrying what it printed. */
export function runCommand(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(" ")}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/** This host, as the agent's networks run on it. */
export const localNetHost: NetHost = { run: runCommand, alive: processAlive };

export class Networks {
  /** Every change to networks and their ports, one at a time. */
  private readonly turns = new Turns();
  /** Hooks for what follows the networks (watch.ts): a network applied or removed, its ports changed (by id). */
  readonly events = new EventEmitter<{ applied: [string]; removed: [string]; ports: [string] }>();

  constructor(
    private readonly dir: string,
    private readonly host: NetHost,
    /**
     * Where dnsmasq's host entries are kept (`<id>.hosts`): dnsmasq reads them again on
     * SIGHUP, after it dropped to its unprivileged user, so this folder and its parents
     * must let others through (the agent's run folder, 0711); the entries are 0644.
     */
    private readonly hostsDir: string = path.join(dir, ".hosts"),
    /** Where forwards may listen; null: this agent forwards no ports to managed networks. */
    private readonly forwardPolicy: ForwardPolicy | null = null,
  ) {}

  private hostsFile(id: string): string {
    return path.join(this.hostsDir, `${id}.hosts`);
  }

  private folder(id: string): string {
    if (!ID.test(id)) throw new GuesthouseError("invalid-input", "A network's id is 1 to 40 lowercase letters and digits.");
    return path.join(this.dir, id);
  }

  /** Makes the network, or brings it in line with `spec`; undone when a step fails. */
  apply(spec: ManagedNetwork): Promise<AppliedNetwork> {
    return this.turns.run(async () => {
      const made = await this.applyNow(spec);
      this.events.emit("applied", spec.id);
      return made;
    });
  }

  private async applyNow(spec: ManagedNetwork, undoing = false): Promise<AppliedNetwork> {
    const folder = this.folder(spec.id);
    const previous = this.spec(spec.id);
    if (previous && (previous.kind === "bridged") !== (spec.kind === "bridged")) {
      throw new GuesthouseError("conflict", `This network is ${previous.kind === "bridged" ? "bridged" : "one of the agent's own bridges"}; a network's kind does not change. Make a new network instead.`);
    }
    if (spec.kind === "bridged") return this.applyBridged(spec, previous);
    const plan = planIpv4(spec.subnet, spec.dhcp);
    if (spec.kind === "nat" && !plan.dhcp) throw new GuesthouseError("invalid-input", "A NAT network hands out addresses: give it a DHCP range.");
    const bridge = bridgeName(spec.id);
    await this.assertClear(spec, bridge);
    await this.assertForwardsFree(spec, previous);
    // What this call made, for a new network to take away again when a step fails.
    const made = { folder: false, bridge: false, table: false };
    try {
      if (!fs.existsSync(folder)) {
        fs.mkdirSync(folder, { recursive: true, mode: 0o700 });
        made.folder = true;
      }
      if (!(await this.bridgeExists(bridge))) {
        await this.host.run("ip", ["link", "add", bridge, "type", "bridge"]);
        made.bridge = true;
      }
      await this.gatewayAddress(bridge, `${plan.gateway}/${plan.prefix}`);
      await this.gatewayAddress6(bridge, spec.ipv6 ? `${planIpv6(spec.id).gateway}/64` : null);
      await this.host.run("ip", ["link", "set", bridge, "up"]);
      const stored = this.ports(spec.id);
      const ports = this.reserved(spec, stored);
      // Guests' taps that outlived their bridge (it was made again) join the new one.
      if (made.bridge) for (const port of ports) await this.host.run("ip", ["link", "set", "dev", port.tap, "master", bridge]).catch(() => {});
      await this.nft(path.join(folder, "rules.nft"), this.rulesOf(spec, ports));
      made.table = true;
      const pid = plan.dhcp || spec.kind === "nat" ? await this.dnsmasq(spec, plan, bridge, ports) : (await this.stopDnsmasq(spec.id), null);
      fs.writeFileSync(path.join(folder, "spec.json"), `${JSON.stringify(spec, null, 2)}\n`);
      if (JSON.stringify(ports) !== JSON.stringify(stored)) this.savePorts(spec.id, ports);
      return { bridge, plan, dnsmasqPid: pid };
    } catch (err) {
      if (undoing) {
        // Putting the old spec back failed as well: leave it for the next adoption.
      } else if (previous) {
        await this.applyNow(previous, true).catch((e) => console.error(`agent: network ${spec.id} could not be put back as it was:`, e));
      } else {
        await this.teardown(spec.id, { bridge: made.bridge, table: made.table, folder: made.folder }).catch(() => {});
      }
      throw err instanceof GuesthouseError ? err : new GuesthouseError("internal", `The network could not be set up: ${(err as Error).message.split("\n")[0]}`, (err as Error).message);
    }
  }

  /**
   * A bridged network: the host's bridge must be there (and be a bridge); its ports' MAC
   * checks are written. Nothing else is made; a failure leaves things as they were.
   */
  private async applyBridged(spec: BridgedNetwork, previous: ManagedNetwork | null): Promise<AppliedNetwork> {
    const bridge = parseHostBridge(spec.bridge);
    await this.assertHostBridge(bridge);
    // Several networks may name one bridge (each team its own, with its own VLANs): their tables are their ports'.
    if (previous?.kind === "bridged" && previous.bridge !== bridge && this.ports(spec.id).length) {
      throw new GuesthouseError("conflict", `Guests run with cards on ${previous.bridge}; stop them before the network moves to ${bridge}.`);
    }
    const folder = this.folder(spec.id);
    const madeFolder = !fs.existsSync(folder);
    try {
      fs.mkdirSync(folder, { recursive: true, mode: 0o700 });
      await this.nft(path.join(folder, "rules.nft"), this.rulesOf(spec, this.ports(spec.id)));
      fs.writeFileSync(path.join(folder, "spec.json"), `${JSON.stringify(spec, null, 2)}\n`);
      return { bridge, plan: null, dnsmasqPid: null };
    } catch (err) {
      if (madeFolder) await this.teardown(spec.id, { bridge: false, table: true, folder: true }).catch(() => {});
      throw err instanceof GuesthouseError ? err : new GuesthouseError("internal", `The network could not be set up: ${(err as Error).message.split("\n")[0]}`, (err as Error).message);
    }
  }

  /** Refuses a host bridge that is not there, or is another kind of interface, saying how to make one. */
  private async assertHostBridge(bridge: string): Promise<{ vlanFiltering: boolean }> {
    const shown = await this.host.run("ip", ["-j", "-d", "link", "show", "dev", bridge]).catch(() => null);
    const link = shown ? (JSON.parse(shown || "[]") as Array<{ linkinfo?: { info_kind?: string; info_data?: { vlan_filtering?: number } } }>)[0] : undefined;
    if (!link) {
      throw new GuesthouseError("invalid-input", `This host has no interface ${bridge}. Make the bridge first (ip link add ${bridge} type bridge, with the LAN's interface as its port), or name one it has.`);
    }
    const kind = link.linkinfo?.info_kind;
    if (kind !== "bridge") throw new GuesthouseError("invalid-input", `${bridge} is ${kind ? `a ${kind} interface` : "an interface"}, not a bridge: a bridged network's cards join a Linux bridge. Name a bridge, such as br0.`);
    return { vlanFiltering: link.linkinfo?.info_data?.vlan_filtering === 1 };
  }

  /** The network's nftables tables as its spec and ports are now. */
  private rulesOf(spec: ManagedNetwork, ports: Port[]): string {
    if (spec.kind === "bridged") return rulesetOf({ id: spec.id, kind: "bridged", bridge: spec.bridge, ports });
    const plan = planIpv4(spec.subnet, spec.dhcp);
    return rulesetOf({
      id: spec.id,
      kind: spec.kind,
      bridge: bridgeName(spec.id),
      ipv4: plan,
      ipv6: spec.ipv6 ? planIpv6(spec.id) : null,
      ports,
      firewall: spec.firewall,
      forwards: spec.forwards,
      forwardAddress: this.forwardPolicy?.address ?? "127.0.0.1",
    });
  }

  /** The bridge a network's taps join: the agent's own, or (bridged) the host's. */
  bridgeOf(id: string): string {
    const spec = this.spec(id);
    return spec?.kind === "bridged" ? spec.bridge : bridgeName(id);
  }

  /** Removes the network and everything it had; refused while guests' cards are on it. */
  remove(id: string): Promise<void> {
    return this.turns.run(async () => {
      if (!this.spec(id)) throw new GuesthouseError("not-found", "There is no such network on this host.");
      const guests = [...new Set(this.ports(id).map((p) => p.name))];
      if (guests.length) {
        throw new GuesthouseError("conflict", `Guests run with cards on this network (${guests.slice(0, 5).join(", ")}${guests.length > 5 ? ", …" : ""}); stop them or move their cards first.`);
      }
      // The host's bridge of a bridged network stays: it is the admin's, with the LAN on it.
      await this.teardown(id, { bridge: this.spec(id)!.kind !== "bridged", table: true, folder: true });
      this.events.emit("removed", id);
    });
  }

  /**
   * Ports for a starting guest's NICs on managed networks (any ports it had go first):
   * each network must be set up here, and each MAC unused by other guests' ports. The
   * networks' rules and host entries are rendered again; on failure nothing changes.
   */
  plug(guest: { id: string; name: string }, nics: readonly NicToPlug[]): Promise<PluggedNic[]> {
    return this.turns.run(async () => {
      const byNetwork = new Map<string, NicToPlug[]>();
      for (const nic of nics) {
        const spec = this.spec(nic.network);
        if (!spec) throw new GuesthouseError("not-found", `Network card ${nic.index + 1} is on a network that is not set up on this host (was it deleted?). Choose another network for it.`);
        byNetwork.set(nic.network, [...(byNetwork.get(nic.network) ?? []), nic]);
      }
      await this.assertVlans(nics);
      const others = this.ids().flatMap((id) => this.ports(id).filter((p) => p.guest !== guest.id));
      for (const nic of nics) {
        const user = others.find((p) => p.mac === nic.mac.toLowerCase());
        if (user) throw new GuesthouseError("conflict", `The MAC address ${nic.mac} is already used by a card of ${user.name} on this host; give this card another one.`);
      }
      const touched = [...new Set([...byNetwork.keys(), ...this.ids().filter((id) => this.ports(id).some((p) => p.guest === guest.id))])];
      const before = new Map(touched.map((id) => [id, this.ports(id)]));
      const plugged: PluggedNic[] = [];
      try {
        for (const id of touched) {
          const spec = this.spec(id)!;
          const kept = before.get(id)!.filter((p) => p.guest !== guest.id);
          if (spec.kind === "bridged") {
            // The LAN gives the addresses: a port is its tap and MAC (checked), its name for the pages.
            const ports = [...kept];
            const names = new Set(kept.map((p) => p.name));
            for (const [n, nic] of (byNetwork.get(id) ?? []).entries()) {
              const label = hostLabel(guest.name, guest.id);
              const port: Port = { tap: tapName(guest.id, nic.index), mac: nic.mac.toLowerCase(), ip: null, guest: guest.id, name: uniqueLabel(n === 0 ? label : `${label}-nic${nic.index + 1}`, names), ...(nic.bandwidth ? { bandwidth: nic.bandwidth } : {}) };
              names.add(port.name);
              ports.push(port);
              plugged.push({ ...port, index: nic.index, bridge: spec.bridge, ...(nic.vlan !== undefined ? { vlan: nic.vlan } : {}) });
            }
            this.savePorts(id, ports);
            await this.render(spec, ports);
            continue;
          }
          const plan = planIpv4(spec.subnet, spec.dhcp);
          const reservations = spec.reservations ?? [];
          const ips = new Set([plan.gateway, ...reservations.map((r) => r.ip), ...kept.flatMap((p) => (p.ip ? [p.ip] : []))]);
          const names = new Set([...reservations.map((r) => r.name), ...kept.map((p) => p.name)]);
          const leases = this.leasesOf(id);
          const lastLease = new Map(leases.map((l) => [l.mac, l.ip]));
          // An address dnsmasq still leases to another card (a stopped guest's, until it expires)
          // is not given out again: dnsmasq would refuse it and hand out another, which the
          // port's rules would drop.
          const plugging = new Set((byNetwork.get(id) ?? []).map((nic) => nic.mac.toLowerCase()));
          const now = Date.now() / 1000;
          for (const lease of leases) if (!plugging.has(lease.mac) && (lease.expires === 0 || lease.expires > now)) ips.add(lease.ip);
          // A running guest's cards plugged again (a card plugged in or out beside them) keep their addresses.
          const had = new Map(before.get(id)!.flatMap((p) => (p.guest === guest.id && p.ip && plugging.has(p.mac) ? [[p.mac, p.ip] as const] : [])));
          for (const ip of had.values()) ips.add(ip);
          const ports = [...kept];
          for (const [n, nic] of (byNetwork.get(id) ?? []).entries()) {
            const mac = nic.mac.toLowerCase();
            const reserved = reservations.find((r) => r.mac.toLowerCase() === mac);
            const ip = reserved?.ip ?? had.get(mac) ?? (plan.dhcp ? chooseAddress(plan, ips, lastLease.get(mac) ?? null) : null);
            const label = hostLabel(guest.name, guest.id);
            const name = reserved?.name ?? uniqueLabel(n === 0 ? label : `${label}-nic${nic.index + 1}`, names);
            const port: Port = { tap: tapName(guest.id, nic.index), mac, ip, guest: guest.id, name, ...(nic.bandwidth ? { bandwidth: nic.bandwidth } : {}) };
            if (ip) ips.add(ip);
            names.add(name);
            ports.push(port);
            plugged.push({ ...port, index: nic.index, bridge: bridgeName(id) });
          }
          this.savePorts(id, ports);
          await this.render(spec, ports);
        }
        return plugged;
      } catch (err) {
        for (const [id, ports] of before) {
          this.savePorts(id, ports);
          await this.render(this.spec(id)!, ports).catch((e) => console.error(`agent: network ${id}: its rules could not be put back:`, e));
        }
        throw err;
      }
    });
  }

  /**
   * Cards with a VLAN: each on a bridged network whose bridge is there and filters VLANs
   * (else the tag would mean nothing, and the guest would sit on the bridge's default VLAN).
   */
  private async assertVlans(nics: readonly NicToPlug[]): Promise<void> {
    for (const nic of nics) {
      const spec = this.spec(nic.network)!;
      if (spec.kind === "bridged") {
        const { vlanFiltering } = await this.assertHostBridge(spec.bridge).catch((err: GuesthouseError) => {
          throw new GuesthouseError("conflict", `Network card ${nic.index + 1}'s bridged network cannot be joined: ${err.message}`);
        });
        if (nic.vlan !== undefined && !vlanFiltering) {
          throw new GuesthouseError("invalid-input", `Network card ${nic.index + 1} is on VLAN ${nic.vlan}, but the host's bridge ${spec.bridge} does not filter VLANs (vlan_filtering 0), so the tag would mean nothing. Turn filtering on (ip link set dev ${spec.bridge} type bridge vlan_filtering 1) or take the card's VLAN away.`);
        }
      } else if (nic.vlan !== undefined) {
        throw new GuesthouseError("invalid-input", `Network card ${nic.index + 1} has VLAN ${nic.vlan}, but its network is ${spec.kind}: VLAN tags are for cards on bridged networks.`);
      }
    }
  }

  /** Takes a stopped guest's ports away (its taps went with its QEMU). */
  unplug(guestId: string): Promise<void> {
    return this.turns.run(async () => {
      for (const id of this.ids()) {
        const ports = this.ports(id);
        const kept = ports.filter((p) => p.guest !== guestId);
        if (kept.length === ports.length) continue;
        this.savePorts(id, kept);
        await this.render(this.spec(id)!, kept).catch((err) => console.error(`agent: network ${id}: rules without guest ${guestId}'s cards failed:`, err));
      }
    });
  }

  /** After the agent's restart: the ports of guests that no longer run go. */
  async prune(running: ReadonlySet<string>): Promise<void> {
    const gone = new Set(this.ids().flatMap((id) => this.ports(id).map((p) => p.guest)).filter((g) => !running.has(g)));
    for (const guest of gone) await this.unplug(guest);
  }

  /**
   * The ports with the network's reservations applied: a running card whose MAC was just
   * reserved takes its address and name now (its rules follow; its next DHCP renewal gets
   * the address). An address another card holds is refused, naming it.
   */
  private reserved(spec: RoutedNetwork, ports: Port[]): Port[] {
    const reservations = spec.reservations ?? [];
    for (const r of reservations) {
      const holder = ports.find((p) => p.ip === r.ip && p.mac !== r.mac.toLowerCase());
      if (holder && !reservations.some((o) => o.mac.toLowerCase() === holder.mac)) {
        throw new GuesthouseError("conflict", `${r.ip} is in use by a card of ${holder.name} on this network; choose another address, or reserve it once that guest has stopped.`);
      }
    }
    return ports.map((p) => {
      const r = reservations.find((o) => o.mac.toLowerCase() === p.mac);
      return r ? { ...p, ip: r.ip, name: r.name } : p;
    });
  }

  /** Every port of a network (the guests' cards on it). */
  ports(id: string): Port[] {
    const file = path.join(this.folder(id), "ports.json");
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Port[]) : [];
  }

  private savePorts(id: string, ports: Port[]): void {
    const file = path.join(this.folder(id), "ports.json");
    fs.writeFileSync(`${file}.new`, `${JSON.stringify(ports, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(`${file}.new`, file);
    this.events.emit("ports", id);
  }

  /** The network's rules and dnsmasq's host entries as its ports are now. */
  private async render(spec: ManagedNetwork, ports: Port[]): Promise<void> {
    await this.nft(path.join(this.folder(spec.id), "rules.nft"), this.rulesOf(spec, ports));
    if (spec.kind !== "bridged" && this.writeHosts(spec, ports)) {
      const pid = this.dnsmasqPid(spec.id);
      if (pid) process.kill(pid, "SIGHUP");
    }
  }

  /** Writes dnsmasq's host entries; true when they changed. */
  private writeHosts(spec: RoutedNetwork, ports: Port[]): boolean {
    const file = this.hostsFile(spec.id);
    const text = hostsFileOf(spec.reservations ?? [], ports);
    if (fs.existsSync(file) && fs.readFileSync(file, "utf8") === text) return false;
    fs.mkdirSync(this.hostsDir, { recursive: true, mode: 0o711 });
    fs.chmodSync(this.hostsDir, 0o711);
    fs.writeFileSync(`${file}.new`, text, { mode: 0o644 });
    fs.chmodSync(`${file}.new`, 0o644);
    fs.renameSync(`${file}.new`, file);
    return true;
  }

  /** The bridge has exactly the gateway's address (changed only when it differs, so traffic and dnsmasq go on). */
  private async gatewayAddress(bridge: string, cidr: string): Promise<void> {
    const shown = JSON.parse((await this.host.run("ip", ["-j", "-4", "addr", "show", "dev", bridge])) || "[]") as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
    const have = shown.flatMap((l) => l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
    if (have.length === 1 && have[0] === cidr) return;
    await this.host.run("ip", ["-4", "addr", "flush", "dev", bridge]);
    await this.host.run("ip", ["addr", "add", cidr, "dev", bridge]);
  }

  /**
   * The bridge's global IPv6 address: the /64's ::1, or none (its link-local address, the
   * kernel's, stays). No duplicate address detection: the /64 is the network's alone, and
   * dnsmasq must find the address usable at once.
   */
  private async gatewayAddress6(bridge: string, cidr: string | null): Promise<void> {
    const shown = JSON.parse((await this.host.run("ip", ["-j", "-6", "addr", "show", "dev", bridge, "scope", "global"])) || "[]") as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
    const have = shown.flatMap((l) => l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
    if (cidr ? have.length === 1 && have[0] === cidr : have.length === 0) return;
    if (have.length) await this.host.run("ip", ["-6", "addr", "flush", "dev", bridge, "scope", "global"]);
    if (cidr) await this.host.run("ip", ["-6", "addr", "add", cidr, "dev", bridge, "nodad"]);
  }

  /** After the agent's restart: every kept network applied again (what still runs is kept). */
  async adopt(): Promise<string[]> {
    if (!fs.existsSync(this.dir)) return [];
    const adopted: string[] = [];
    for (const id of this.ids()) {
      const spec = this.spec(id);
      if (!spec) continue;
      try {
        await this.apply(spec);
        adopted.push(id);
      } catch (err) {
        console.error(`agent: network ${id} could not be set up again:`, err);
      }
    }
    return adopted;
  }

  /** Every managed network as it stands. */
  list(): NetworkState[] {
    return this.ids().flatMap((id) => {
      const spec = this.spec(id);
      return spec ? [this.stateOf(spec)] : [];
    });
  }

  stateOf(spec: ManagedNetwork): NetworkState {
    if (spec.kind === "bridged") return { id: spec.id, kind: "bridged", subnet: null, bridge: spec.bridge, gateway: null, dhcp: null, domain: null, ipv6: null, dnsmasq: false };
    const plan = planIpv4(spec.subnet, spec.dhcp);
    return {
      id: spec.id,
      kind: spec.kind,
      subnet: plan.subnet,
      bridge: bridgeName(spec.id),
      gateway: plan.gateway,
      dhcp: plan.dhcp,
      domain: spec.domain,
      ipv6: spec.ipv6 ? planIpv6(spec.id).prefix : null,
      dnsmasq: this.dnsmasqPid(spec.id) !== null,
    };
  }

  /** The leases dnsmasq keeps for the network's guests. */
  leases(id: string): Lease[] {
    if (!this.spec(id)) throw new GuesthouseError("not-found", "There is no such network on this host.");
    return this.leasesOf(id);
  }

  private leasesOf(id: string): Lease[] {
    const file = path.join(this.folder(id), "leases");
    return fs.existsSync(file) ? parseLeases(fs.readFileSync(file, "utf8")) : [];
  }

  /** The network's dnsmasq, if it runs. */
  dnsmasqPid(id: string): number | null {
    const file = path.join(this.folder(id), "dnsmasq.pid");
    const pid = fs.existsSync(file) ? Number(fs.readFileSync(file, "utf8").trim()) : NaN;
    return Number.isInteger(pid) && pid > 0 && this.host.alive(pid) ? pid : null;
  }

  /**
   * Refuses a subnet that overlaps another network's or a route of the host (a LAN, a VPN,
   * a container bridge), naming it: guests there would hide it, or be hidden.
   */
  private async assertClear(spec: RoutedNetwork, bridge: string): Promise<void> {
    const others = this.ids()
      .filter((id) => id !== spec.id)
      .flatMap((id) => {
        const other = this.spec(id);
        return other && other.kind !== "bridged" ? [{ name: id, subnet: other.subnet }] : [];
      });
    const routes = (JSON.parse((await this.host.run("ip", ["-j", "-4", "route"])) || "[]") as HostRoute[]).filter((r) => r.dev !== bridge);
    const clash = clashOf(planIpv4(spec.subnet, null).subnet, others, routes);
    if (clash) throw new GuesthouseError("conflict", `${spec.subnet} overlaps ${clash}; choose another subnet.`);
  }

  /**
   * Refuses forwards a NAT network cannot have: on an isolated network, outside the
   * host's forward range, overlapping each other or another network's, or on a port the
   * host already listens on (one this network forwarded before is its own).
   */
  private async assertForwardsFree(spec: RoutedNetwork, previous: ManagedNetwork | null): Promise<void> {
    const forwards = spec.forwards ?? [];
    if (forwards.length === 0) return;
    if (spec.kind !== "nat") throw new GuesthouseError("invalid-input", "Ports are forwarded to NAT networks only: an isolated network's guests are not reached from outside.");
    if (!this.forwardPolicy) throw new GuesthouseError("forbidden", "This host forwards no ports to guests (GUESTHOUSE_FORWARD_PORTS is not set).");
    const { firstPort, lastPort } = this.forwardPolicy;
    for (const f of forwards) {
      const { first, last } = hostPortsOf(f);
      if (first < firstPort || last > lastPort) {
        throw new GuesthouseError("invalid-input", `Host port ${f.protocol} ${first === last ? first : `${first}-${last}`} is outside the ports this host forwards to guests (${firstPort}–${lastPort}). Choose one in that range.`);
      }
    }
    const twice = overlappingForward(forwards);
    if (twice) throw new GuesthouseError("invalid-input", `Host port ${twice.protocol} ${twice.hostPort} is forwarded twice on this network.`);
    for (const id of this.ids().filter((i) => i !== spec.id)) {
      const other = this.spec(id);
      const clash = overlappingForward([...forwards, ...(other && other.kind !== "bridged" ? (other.forwards ?? []) : [])]);
      if (clash) throw new GuesthouseError("conflict", `Host port ${clash.protocol} ${clash.hostPort} is already forwarded to another network on this host. Choose another.`);
    }
    const mine = previous && previous.kind !== "bridged" ? (previous.forwards ?? []) : [];
    const listening = await this.listeningPorts();
    for (const f of forwards) {
      const { first, last } = hostPortsOf(f);
      for (let p = first; p <= last; p++) {
        if (listening.has(`${f.protocol}/${p}`) && !mine.some((m) => m.protocol === f.protocol && hostPortsOf(m).first <= p && p <= hostPortsOf(m).last)) {
          throw new GuesthouseError("conflict", `Something on this host already listens on ${f.protocol} port ${p} (a guest's user-mode forward or another program). Choose another port.`);
        }
      }
    }
  }

  /** The ports something on the host listens on, as "tcp/22" and "udp/53" (ss). */
  private async listeningPorts(): Promise<Set<string>> {
    const out = await this.host.run("ss", ["-H", "-l", "-n", "-t", "-u"]);
    const ports = new Set<string>();
    for (const line of out.split("\n")) {
      const fields = line.trim().split(/\s+/);
      const local = fields[4];
      if (!local) continue;
      const port = Number(local.slice(local.lastIndexOf(":") + 1));
      if (Number.isInteger(port)) ports.add(`${fields[0] === "udp" ? "udp" : "tcp"}/${port}`);
    }
    return ports;
  }

  /** What the network's rules, defaults and spoofing checks have matched (nft's counters). */
  async counters(id: string): Promise<NetworkCounters> {
    if (!this.spec(id)) throw new GuesthouseError("not-found", "There is no such network on this host.");
    const result: NetworkCounters = { rules: {}, defaultIn: 0, defaultOut: 0, spoofed: 0 };
    for (const family of this.spec(id)!.kind === "bridged" ? ["bridge"] : ["inet", "bridge"]) {
      const listed = JSON.parse(await this.host.run("nft", ["-j", "list", "table", family, tableName(id)])) as { nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number; bytes: number } }> } }> };
      for (const { rule } of listed.nftables) {
        const counter = rule?.expr.find((e) => e.counter)?.counter;
        if (!rule?.comment || !counter) continue;
        if (rule.comment.startsWith("rule:")) {
          const entry = (result.rules[rule.comment.slice(5)] ??= { packets: 0, bytes: 0 });
          entry.packets += counter.packets;
          entry.bytes += counter.bytes;
        } else if (rule.comment === "default in") result.defaultIn += counter.packets;
        else if (rule.comment === "default out") result.defaultOut += counter.packets;
        else if (rule.comment.startsWith("spoofed")) result.spoofed += counter.packets;
      }
    }
    return result;
  }

  /**
   * Connects to a TCP forward from the host (to the gateway's address, as any local
   * address is forwarded): whether the guest answered, in words.
   */
  async testForward(id: string, protocol: "tcp" | "udp", hostPort: number): Promise<{ answered: boolean; message: string }> {
    const spec = this.spec(id);
    if (!spec) throw new GuesthouseError("not-found", "There is no such network on this host.");
    if (spec.kind === "bridged") throw new GuesthouseError("not-found", "A bridged network forwards no ports: its guests are on the host's LAN.");
    const forward = (spec.forwards ?? []).find((f) => f.protocol === protocol && hostPortsOf(f).first <= hostPort && hostPort <= hostPortsOf(f).last);
    if (!forward) throw new GuesthouseError("not-found", `The network forwards no ${protocol} port ${hostPort}.`);
    if (protocol === "udp") throw new GuesthouseError("invalid-input", "A UDP forward cannot be tested by connecting: UDP has no answer to wait for. Test it from a client of the service.");
    const gateway = planIpv4(spec.subnet, spec.dhcp).gateway;
    const started = Date.now();
    return new Promise((resolve) => {
      const socket = net.connect({ host: gateway, port: hostPort, timeout: 3_000 });
      const done = (answered: boolean, message: string) => {
        socket.destroy();
        resolve({ answered, message });
      };
      socket.once("connect", () => done(true, `The guest answered on ${protocol} port ${hostPort} (in ${Date.now() - started} ms).`));
      socket.once("timeout", () => done(false, `No answer on ${protocol} port ${hostPort} within 3 s: is the guest running, and its firewall open?`));
      socket.once("error", (err: NodeJS.ErrnoException) =>
        done(false, err.code === "ECONNREFUSED" ? `The guest refused the connection on port ${forward.guestPort}: nothing listens there.` : `The connection failed: ${err.message}.`),
      );
    });
  }

  private ids(): string[] {
    return fs.existsSync(this.dir) ? fs.readdirSync(this.dir).filter((id) => ID.test(id)) : [];
  }

  private spec(id: string): ManagedNetwork | null {
    const file = path.join(this.folder(id), "spec.json");
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as ManagedNetwork) : null;
  }

  private async bridgeExists(bridge: string): Promise<boolean> {
    return this.host.run("ip", ["link", "show", bridge]).then(() => true, () => false);
  }

  private async nft(file: string, text: string): Promise<void> {
    fs.writeFileSync(file, text);
    await this.host.run("nft", ["-f", file]);
  }

  /** Starts dnsmasq with the network's configuration, or keeps it when that is unchanged. */
  private async dnsmasq(spec: RoutedNetwork, plan: Ipv4Plan, bridge: string, ports: Port[]): Promise<number> {
    const folder = this.folder(spec.id);
    const conf = path.join(folder, "dnsmasq.conf");
    const hostsChanged = this.writeHosts(spec, ports);
    const text = dnsmasqConfig({
      bridge,
      ipv4: plan,
      ipv6: spec.ipv6 ? planIpv6(spec.id) : null,
      domain: spec.domain,
      router: spec.kind === "nat",
      leaseFile: path.join(folder, "leases"),
      pidFile: path.join(folder, "dnsmasq.pid"),
      upstream: spec.kind === "nat",
      hostsFile: this.hostsFile(spec.id),
    });
    const running = this.dnsmasqPid(spec.id);
    if (running && fs.existsSync(conf) && fs.readFileSync(conf, "utf8") === text) {
      // Reservations changed: dnsmasq reads its host entries again, its leases and DNS kept.
      if (hostsChanged) process.kill(running, "SIGHUP");
      return running;
    }
    await this.stopDnsmasq(spec.id);
    fs.writeFileSync(conf, text);
    // dnsmasq forks into the background once it listens, and writes its pid file.
    await this.host.run("dnsmasq", [`--conf-file=${conf}`]);
    const pid = this.dnsmasqPid(spec.id);
    if (!pid) throw new GuesthouseError("internal", "dnsmasq did not stay up; see the host's log.");
    return pid;
  }

  private async stopDnsmasq(id: string): Promise<void> {
    const pid = this.dnsmasqPid(id);
    if (!pid) return;
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 50 && this.host.alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    if (this.host.alive(pid)) process.kill(pid, "SIGKILL");
  }

  private async teardown(id: string, what: { bridge: boolean; table: boolean; folder: boolean }): Promise<void> {
    const folder = this.folder(id);
    await this.stopDnsmasq(id);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (what.table) await this.nft(path.join(this.dir, `.remove-${id}.nft`), removalOf(id)).finally(() => fs.rmSync(path.join(this.dir, `.remove-${id}.nft`), { force: true }));
    const bridge = bridgeName(id);
    if (what.bridge && (await this.bridgeExists(bridge))) await this.host.run("ip", ["link", "del", bridge]);
    if (what.folder) {
      fs.rmSync(folder, { recursive: true, force: true });
      fs.rmSync(this.hostsFile(id), { force: true });
    }
  }
}
