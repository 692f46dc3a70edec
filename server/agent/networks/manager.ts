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
 * `remove` takes everything away. Commands go through `host`, so a test can run the whole
 * manager inside a network namespace.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { NetworkState } from "../../agent-protocol";
import { GuesthouseError } from "../../domain/errors";
import { clashOf, planIpv4, type HostRoute, type Ipv4Plan } from "../../domain/network-plan";
import { dnsmasqConfig, parseLeases, type Lease } from "./dnsmasq";
import { bridgeName, removalOf, rulesetOf } from "./nft";

export interface ManagedNetwork {
  id: string;
  kind: "nat" | "isolated";
  subnet: string;
  /** "auto": the upper half of the subnet's hosts; null: no DHCP (isolated networks only). */
  dhcp: { start: string; end: string } | "auto" | null;
  domain: string;
  reservations?: Array<{ mac: string; ip: string; name: string }>;
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
  constructor(
    private readonly dir: string,
    private readonly host: NetHost,
  ) {}

  private folder(id: string): string {
    if (!ID.test(id)) throw new GuesthouseError("invalid-input", "A network's id is 1 to 40 lowercase letters and digits.");
    return path.join(this.dir, id);
  }

  /** Makes the network, or brings it in line with `spec`; undone when a step fails. */
  async apply(spec: ManagedNetwork, undoing = false): Promise<{ bridge: string; plan: Ipv4Plan; dnsmasqPid: number | null }> {
    const folder = this.folder(spec.id);
    const plan = planIpv4(spec.subnet, spec.dhcp);
    if (spec.kind === "nat" && !plan.dhcp) throw new GuesthouseError("invalid-input", "A NAT network hands out addresses: give it a DHCP range.");
    const previous = this.spec(spec.id);
    const bridge = bridgeName(spec.id);
    await this.assertClear(spec, bridge);
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
      await this.host.run("ip", ["addr", "flush", "dev", bridge]);
      await this.host.run("ip", ["addr", "add", `${plan.gateway}/${plan.prefix}`, "dev", bridge]);
      await this.host.run("ip", ["link", "set", bridge, "up"]);
      await this.nft(path.join(folder, "rules.nft"), rulesetOf({ id: spec.id, kind: spec.kind, bridge, ipv4: plan }));
      made.table = true;
      const pid = plan.dhcp || spec.kind === "nat" ? await this.dnsmasq(spec, plan, bridge) : (await this.stopDnsmasq(spec.id), null);
      fs.writeFileSync(path.join(folder, "spec.json"), `${JSON.stringify(spec, null, 2)}\n`);
      return { bridge, plan, dnsmasqPid: pid };
    } catch (err) {
      if (undoing) {
        // Putting the old spec back failed as well: leave it for the next adoption.
      } else if (previous) {
        await this.apply(previous, true).catch((e) => console.error(`agent: network ${spec.id} could not be put back as it was:`, e));
      } else {
        await this.teardown(spec.id, { bridge: made.bridge, table: made.table, folder: made.folder }).catch(() => {});
      }
      throw err instanceof GuesthouseError ? err : new GuesthouseError("internal", `The network could not be set up: ${(err as Error).message.split("\n")[0]}`, (err as Error).message);
    }
  }

  /** Removes the network and everything it had; removing one that is not there does nothing. */
  async remove(id: string): Promise<void> {
    if (!this.spec(id)) throw new GuesthouseError("not-found", "There is no such network on this host.");
    await this.teardown(id, { bridge: true, table: true, folder: true });
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
    const plan = planIpv4(spec.subnet, spec.dhcp);
    return { id: spec.id, kind: spec.kind, subnet: plan.subnet, bridge: bridgeName(spec.id), gateway: plan.gateway, dhcp: plan.dhcp, domain: spec.domain, dnsmasq: this.dnsmasqPid(spec.id) !== null };
  }

  /** The leases dnsmasq keeps for the network's guests. */
  leases(id: string): Lease[] {
    if (!this.spec(id)) throw new GuesthouseError("not-found", "There is no such network on this host.");
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
  private async assertClear(spec: ManagedNetwork, bridge: string): Promise<void> {
    const others = this.ids()
      .filter((id) => id !== spec.id)
      .flatMap((id) => {
        const other = this.spec(id);
        return other ? [{ name: id, subnet: other.subnet }] : [];
      });
    const routes = (JSON.parse((await this.host.run("ip", ["-j", "-4", "route"])) || "[]") as HostRoute[]).filter((r) => r.dev !== bridge);
    const clash = clashOf(planIpv4(spec.subnet, null).subnet, others, routes);
    if (clash) throw new GuesthouseError("conflict", `${spec.subnet} overlaps ${clash}; choose another subnet.`);
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
  private async dnsmasq(spec: ManagedNetwork, plan: Ipv4Plan, bridge: string): Promise<number> {
    const folder = this.folder(spec.id);
    const conf = path.join(folder, "dnsmasq.conf");
    const text = dnsmasqConfig({
      bridge,
      ipv4: plan,
      domain: spec.domain,
      router: spec.kind === "nat",
      leaseFile: path.join(folder, "leases"),
      pidFile: path.join(folder, "dnsmasq.pid"),
      upstream: spec.kind === "nat",
      reservations: spec.reservations,
    });
    const running = this.dnsmasqPid(spec.id);
    if (running && fs.existsSync(conf) && fs.readFileSync(conf, "utf8") === text) return running;
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
    if (what.folder) fs.rmSync(folder, { recursive: true, force: true });
  }
}
