/**
 * Managed networks' set-up and rule changes, with the agent's own manager
 * (server/agent/networks/manager.ts) and the real kernel, nft and dnsmasq, inside a network
 * namespace this script makes (and removes, with everything in it):
 *
 *   node --import tsx bench/networks.ts
 *   BENCH_NETWORKS=100 BENCH_PORTS=5 node --import tsx bench/networks.ts
 *
 * Rows:
 *   - making a NAT network (bridge, its address, one nft transaction, dnsmasq started and
 *     answering with its pid file): median and worst over the first BENCH_NETWORKS made;
 *     beside it, the same steps typed as bare commands (ip, nft -f of the same text,
 *     dnsmasq), the floor under any manager;
 *   - with BENCH_NETWORKS networks and BENCH_PORTS guests' ports on each (500 in all by
 *     default), applying a firewall rule change to one network (its two tables replaced in
 *     one `nft -f`), median and p90 over 20 changes; beside it, `nft -f` of that text alone.
 *
 * Targets (issue 15): a network made ≤ 200 ms; a rule change with 100 networks and 500
 * NICs ≤ 200 ms. Prints PASS or MISS per target; exits 1 only if it could not run (as root,
 * with iproute2, nftables and dnsmasq).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Networks, processAlive, type ManagedNetwork, type NetHost } from "../server/agent/networks/manager";
import { rulesetOf, bridgeName } from "../server/agent/networks/nft";
import { planIpv4 } from "../server/domain/network-plan";
import type { FirewallRule } from "../server/domain/network-rules";
import { Namespaces } from "../tests/helpers/netns";
import { machineLine, median, ms, percentile, verdict } from "./stats";

const NETWORKS = Number(process.env.BENCH_NETWORKS ?? 100);
const PORTS = Number(process.env.BENCH_PORTS ?? 5);
const CHANGES = 20;
const CREATE_MS = 200;
const CHANGE_MS = 200;

const hex = (n: number) => n.toString(16).padStart(2, "0");
const macOf = (net: number, port: number) => `52:54:00:${hex(Math.floor(net / 256))}:${hex(net % 256)}:${hex(port)}`;
const specOf = (i: number, rules: FirewallRule[] = []): ManagedNetwork => ({
  id: `bench${i}`,
  kind: "nat",
  subnet: `10.${100 + Math.floor(i / 64)}.${(i % 64) * 4}.0/22`,
  dhcp: "auto",
  domain: `n${i}.internal`,
  firewall: { defaultIn: "deny", defaultOut: "allow", rules },
});

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: the networks are made in a network namespace");
  const ns = new Namespaces();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-bench-nets-"));
  try {
    const inside = ns.add("b");
    const run = (command: string, args: string[]) => execFileSync("ip", ["netns", "exec", inside, command, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    const host: NetHost = { run: async (command, args) => run(command, args), alive: processAlive };
    fs.chmodSync(dir, 0o711);
    const networks = new Networks(path.join(dir, "networks"), host, path.join(dir, "hosts"));

    // The floor: the same steps as bare commands, for a network the manager never sees.
    const floor: number[] = [];
    for (let i = 0; i < 10; i++) {
      const plan = planIpv4(`10.250.${i * 4}.0/22`, "auto");
      const bridge = `ghfloor${i}`;
      const ruleset = path.join(dir, `floor${i}.nft`);
      fs.writeFileSync(ruleset, rulesetOf({ id: `floor${i}`, kind: "nat", bridge, ipv4: plan, ports: [] }));
      const conf = path.join(dir, `floor${i}.conf`);
      fs.writeFileSync(conf, `interface=${bridge}\nbind-interfaces\nlisten-address=${plan.gateway}\nexcept-interface=lo\npid-file=${dir}/floor${i}.pid\ndhcp-range=${plan.dhcp!.start},${plan.dhcp!.end},1h\ndhcp-leasefile=${dir}/floor${i}.leases\n`);
      const t = performance.now();
      run("ip", ["link", "add", bridge, "type", "bridge"]);
      run("ip", ["addr", "add", `${plan.gateway}/${plan.prefix}`, "dev", bridge]);
      run("ip", ["link", "set", bridge, "up"]);
      run("nft", ["-f", ruleset]);
      run("dnsmasq", [`--conf-file=${conf}`]);
      floor.push(performance.now() - t);
    }

    const create: number[] = [];
    for (let i = 0; i < NETWORKS; i++) {
      const t = performance.now();
      const made = await networks.apply(specOf(i));
      create.push(performance.now() - t);
      if (!made.dnsmasqPid) throw new Error(`network ${i}: no dnsmasq`);
    }
    // The guests' ports, as their starts would make them (taps need no device to be ruled on).
    for (let i = 0; i < NETWORKS; i++) {
      await networks.plug({ id: `guest${i}`, name: `guest-${i}` }, Array.from({ length: PORTS }, (_, p) => ({ index: p, mac: macOf(i, p), network: `bench${i}` })));
    }
    const rules = Number(run("nft", ["list", "ruleset"]).split("\n").filter((l) => /counter|accept|drop|masquerade|dnat/.test(l)).length);

    const change: number[] = [];
    const bare: number[] = [];
    for (let c = 0; c < CHANGES; c++) {
      const i = (c * 7) % NETWORKS;
      const rule: FirewallRule = { id: `r${c}`, action: "deny", direction: "in", protocol: "tcp", ports: { from: 1000 + c, to: 1000 + c }, cidr: null, mac: null, comment: "" };
      const t = performance.now();
      await networks.apply(specOf(i, [rule]));
      change.push(performance.now() - t);
      const file = path.join(dir, "networks", `bench${i}`, "rules.nft");
      const t2 = performance.now();
      run("nft", ["-f", file]);
      bare.push(performance.now() - t2);
    }

    console.log(`# Managed networks (${machineLine()})`);
    console.log(`networks: ${NETWORKS}, ports: ${NETWORKS * PORTS}, nft rules in all: ${rules}, dnsmasq processes: ${NETWORKS}`);
    console.log("");
    console.log("| row | median | worst / p90 |");
    console.log("| --- | --- | --- |");
    console.log(`| making a NAT network (manager.apply), first ${NETWORKS} | ${ms(median(create))} | ${ms(Math.max(...create))} worst |`);
    console.log(`| the same steps as bare commands (the floor), 10 | ${ms(median(floor))} | ${ms(Math.max(...floor))} worst |`);
    console.log(`| a rule change on one network, ${NETWORKS} networks / ${NETWORKS * PORTS} ports (manager.apply) | ${ms(median(change))} | ${ms(percentile(change, 90))} p90 |`);
    console.log(`| \`nft -f\` of that network's tables alone | ${ms(median(bare))} | ${ms(percentile(bare, 90))} p90 |`);
    console.log("");
    console.log(`network made ≤ ${CREATE_MS} ms: ${verdict(median(create) <= CREATE_MS)} (${ms(median(create))}, ${(median(create) / median(floor)).toFixed(2)}× the bare commands)`);
    console.log(`rule change with ${NETWORKS} networks and ${NETWORKS * PORTS} NICs ≤ ${CHANGE_MS} ms: ${verdict(median(change) <= CHANGE_MS)} (${ms(median(change))}, ${(median(change) / median(bare)).toFixed(2)}× nft -f alone)`);
    for (let i = 0; i < 10; i++) {
      const pid = Number(fs.readFileSync(path.join(dir, `floor${i}.pid`), "utf8"));
      if (processAlive(pid)) process.kill(pid, "SIGKILL");
    }
    for (let i = 0; i < NETWORKS; i++) await networks.unplug(`guest${i}`);
    for (let i = 0; i < NETWORKS; i++) await networks.remove(`bench${i}`);
    if (run("ip", ["-o", "link", "show"]).includes(bridgeName("bench0"))) throw new Error("a bridge was left");
  } finally {
    ns.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
