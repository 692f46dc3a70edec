/**
 * The agent's managed networks (server/agent/networks/manager.ts) with the real kernel, nft
 * and dnsmasq, the whole manager run inside a network namespace the test makes: a network
 * made, applied again (dnsmasq kept), adopted by a new manager as after the agent's restart,
 * a bad change refused with nothing touched, a step that fails undone, and removal leaving
 * no bridge, table, dnsmasq or file.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { watchAddresses } from "../../server/agent/networks/addresses";
import { Networks, processAlive, type ManagedNetwork, type NetHost } from "../../server/agent/networks/manager";
import { bridgeName, tableName } from "../../server/agent/networks/nft";
import { waitFor } from "../helpers/agent";
import { Namespaces, namespacesNamed } from "../helpers/netns";

const LAB: ManagedNetwork = { id: "lab1", kind: "nat", subnet: "10.78.0.0/24", dhcp: "auto", domain: "lab.test" };

describe("managed networks, the agent's manager in a network namespace", () => {
  const ns = new Namespaces();
  let inside = "";
  let dir = "";
  /** Commands that fail on purpose (a step that breaks). */
  const failing = new Set<string>();
  const host: NetHost = {
    run: async (command, args) => {
      if (failing.has(command)) throw new Error(`${command}: made to fail by the test`);
      return execFileSync("ip", ["netns", "exec", inside, command, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    },
    alive: processAlive,
  };
  const tables = () => ns.run(inside, "nft", "list", "tables").trim().split("\n").filter(Boolean);
  const bridgeUp = (id: string) => ns.ok(inside, "ip", "link", "show", bridgeName(id));

  before(() => {
    inside = ns.add("m");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-nets-"));
  });
  after(() => {
    ns.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("a NAT network is made: its bridge with the gateway's address, its table, its dnsmasq; a guest gets a lease the manager lists", async () => {
    const networks = new Networks(dir, host);
    const made = await networks.apply(LAB);
    assert.equal(made.plan?.gateway, "10.78.0.1");
    assert.match(ns.run(inside, "ip", "-4", "addr", "show", made.bridge), /inet 10\.78\.0\.1\/24/);
    assert.deepEqual(tables(), [`table inet ${tableName("lab1")}`, `table bridge ${tableName("lab1")}`]);
    assert.ok(made.dnsmasqPid && host.alive(made.dnsmasqPid));
    const guest = ns.add("g");
    ns.link(inside, "vg", guest, "eth0");
    ns.run(inside, "ip", "link", "set", "vg", "master", made.bridge);
    execFileSync("ip", ["netns", "exec", guest, "busybox", "udhcpc", "-i", "eth0", "-q", "-n", "-t", "10", "-T", "1", "-x", "hostname:web1", "-s", "/bin/true"], { stdio: "ignore", timeout: 30_000 });
    const mac = ns.run(guest, "cat", "/sys/class/net/eth0/address").trim();
    const [lease] = await waitFor("the lease", () => (networks.leases("lab1").length ? networks.leases("lab1") : null), 5_000);
    assert.deepEqual([lease!.mac, lease!.hostname], [mac, "web1"]);
    assert.match(lease!.ip, /^10\.78\.0\.(12[89]|1[3-9]\d|2[0-4]\d|25[0-4])$/);
  });

  test("a guest's address is known within 2 s of its DHCP acknowledgement, from the lease file and the bridge's neighbours, with no agent in the guest", async () => {
    const books: Array<{ at: number; book: Map<string, string[]> }> = [];
    const watch = watchAddresses(host, bridgeName("lab1"), path.join(dir, "lab1", "leases"), (book) => books.push({ at: Date.now(), book }), 500);
    try {
      const guest = ns.add("g2");
      ns.link(inside, "vg2", guest, "eth0");
      ns.run(inside, "ip", "link", "set", "vg2", "master", bridgeName("lab1"));
      const mac = ns.run(guest, "cat", "/sys/class/net/eth0/address").trim();
      execFileSync("ip", ["netns", "exec", guest, "busybox", "udhcpc", "-i", "eth0", "-q", "-n", "-t", "10", "-T", "1", "-s", "/bin/true"], { stdio: "ignore", timeout: 30_000 });
      // udhcpc quits once acknowledged: from here, 2 s at most.
      const acked = Date.now();
      const seen = await waitFor("the new guest's address", () => books.find((b) => b.book.has(mac)), 2_000, 20);
      assert.ok(seen.at - acked <= 2_000, `known ${seen.at - acked} ms after the acknowledgement`);
      assert.match(seen.book.get(mac)![0]!, /^10\.78\.0\.\d+$/);
    } finally {
      watch.stop();
    }
  });

  test("applied again unchanged, dnsmasq keeps running; a new manager (the agent restarted) adopts it as it is", async () => {
    const before = new Networks(dir, host).dnsmasqPid("lab1");
    assert.ok(before);
    assert.equal((await new Networks(dir, host).apply(LAB)).dnsmasqPid, before);
    const restarted = new Networks(dir, host);
    assert.deepEqual(await restarted.adopt(), ["lab1"]);
    assert.equal(restarted.dnsmasqPid("lab1"), before);
    assert.ok(bridgeUp("lab1"));
  });

  test("a change the plan refuses touches nothing; a change that applies restarts dnsmasq with the new range", async () => {
    const networks = new Networks(dir, host);
    const pid = networks.dnsmasqPid("lab1");
    await assert.rejects(networks.apply({ ...LAB, dhcp: { start: "10.78.0.200", end: "10.78.1.5" } }), /outside 10\.78\.0\.0\/24/);
    assert.equal(networks.dnsmasqPid("lab1"), pid);
    const changed = await networks.apply({ ...LAB, dhcp: { start: "10.78.0.10", end: "10.78.0.20" } });
    assert.notEqual(changed.dnsmasqPid, pid);
    assert.match(fs.readFileSync(path.join(dir, "lab1", "dnsmasq.conf"), "utf8"), /^dhcp-range=10\.78\.0\.10,10\.78\.0\.20,/m);
  });

  test("a subnet that overlaps another network or a route of the host is refused, naming it, and nothing is made", async () => {
    const networks = new Networks(dir, host);
    await assert.rejects(networks.apply({ id: "lab3", kind: "nat", subnet: "10.78.0.0/25", dhcp: "auto", domain: "three.test" }), /10\.78\.0\.0\/25 overlaps the network lab1 \(10\.78\.0\.0\/24\)/);
    // A VPN's interface stands in as a veth (this kernel may lack the dummy device).
    ns.run(inside, "ip", "link", "add", "vpn0", "type", "veth", "peer", "name", "vpn1");
    ns.run(inside, "ip", "link", "set", "vpn0", "up");
    ns.run(inside, "ip", "route", "add", "10.90.0.0/16", "dev", "vpn0");
    await assert.rejects(networks.apply({ id: "lab3", kind: "nat", subnet: "10.90.4.0/24", dhcp: "auto", domain: "three.test" }), /overlaps the host's route to 10\.90\.0\.0\/16 \(on vpn0\)/);
    assert.equal(bridgeUp("lab3"), false);
    assert.equal(fs.existsSync(path.join(dir, "lab3")), false);
    ns.run(inside, "ip", "link", "del", "vpn0");
  });

  test("a new network whose dnsmasq cannot start leaves nothing behind; a changed one whose rules fail gets its old spec back", async () => {
    const networks = new Networks(dir, host);
    failing.add("dnsmasq");
    try {
      await assert.rejects(networks.apply({ id: "lab2", kind: "nat", subnet: "10.79.0.0/24", dhcp: "auto", domain: "two.test" }), /made to fail/);
    } finally {
      failing.delete("dnsmasq");
    }
    assert.equal(bridgeUp("lab2"), false, "no bridge left");
    assert.deepEqual(tables(), [`table inet ${tableName("lab1")}`, `table bridge ${tableName("lab1")}`], "no table left");
    assert.equal(fs.existsSync(path.join(dir, "lab2")), false, "no folder left");
    const kept = fs.readFileSync(path.join(dir, "lab1", "spec.json"), "utf8");
    failing.add("nft");
    try {
      await assert.rejects(networks.apply({ ...LAB, kind: "isolated" }), /made to fail/);
    } finally {
      failing.delete("nft");
    }
    assert.equal(fs.readFileSync(path.join(dir, "lab1", "spec.json"), "utf8"), kept, "the spec is as it was");
  });

  test("removed: no bridge, no table, no dnsmasq, no folder; removing it again is not-found; no namespace at the end", async () => {
    const networks = new Networks(dir, host);
    const pid = networks.dnsmasqPid("lab1")!;
    await networks.remove("lab1");
    assert.equal(bridgeUp("lab1"), false);
    assert.deepEqual(tables(), []);
    assert.equal(host.alive(pid), false);
    assert.equal(fs.existsSync(path.join(dir, "lab1")), false);
    await assert.rejects(networks.remove("lab1"), /no such network/, "removing it again says it is not there");
    ns.cleanup();
    assert.deepEqual(namespacesNamed(ns.prefix), []);
  });
});
