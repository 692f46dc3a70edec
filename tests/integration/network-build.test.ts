/**
 * A managed NAT network built from the agent's own pieces (server/agent/networks/: the
 * nftables table, the dnsmasq configuration; server/domain/network-plan.ts: the address
 * plan) with the real kernel, nft and dnsmasq, inside network namespaces the test makes:
 * "host" holds the bridge, the rules and dnsmasq; two stand-in guests (busybox udhcpc on a
 * veth) and a "world" behind the host's uplink, which has no route back to the guests.
 * Every namespace, process and file is removed at the end, and checked to be gone.
 */
import assert from "node:assert/strict";
import { execFileSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { dnsmasqConfig, parseLeases } from "../../server/agent/networks/dnsmasq";
import { diagnose, type DoctorHost } from "../../server/agent/networks/doctor";
import { bridgeName, removalOf, rulesetOf, tableName } from "../../server/agent/networks/nft";
import { planIpv4 } from "../../server/domain/network-plan";
import { waitFor } from "../helpers/agent";
import { Namespaces, namespacesNamed } from "../helpers/netns";

const PLAN = planIpv4("10.77.0.0/24", "auto");
const BRIDGE = bridgeName("t1");
const DOMAIN = "lab.test";
const WORLD = "198.51.100.1";

/** What udhcpc runs on a lease: set the address and the default route, and write the address down. */
const SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface"
    echo "$ip" > "$LEASED"
    ;;
esac
`;

describe("a NAT network from the agent's pieces, in network namespaces", () => {
  const ns = new Namespaces();
  let dir = "";
  let host = "";
  let dnsmasq: ChildProcess | null = null;
  const guests: Record<string, { ns: string; ip: string; mac: string }> = {};

  before(() => {
    assert.equal(process.getuid?.(), 0, "network namespaces take root: run the suite as root (scripts/test.sh)");
    for (const tool of ["ip", "nft", "dnsmasq", "busybox"]) {
      assert.ok(spawnable(tool), `${tool} is missing: scripts/setup.sh --test installs it (iproute2, nftables, dnsmasq-base, busybox)`);
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-net-"));
    host = ns.add("h");
    const world = ns.add("w");
    // The uplink: the world's address only; the world knows no way back to the guests' subnet.
    ns.link(host, "up0", world, "eth0");
    ns.run(host, "ip", "addr", "add", "198.51.100.2/24", "dev", "up0");
    ns.run(world, "ip", "addr", "add", `${WORLD}/24`, "dev", "eth0");
    ns.run(host, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    // The network's bridge with its gateway address.
    ns.run(host, "ip", "link", "add", BRIDGE, "type", "bridge");
    ns.run(host, "ip", "addr", "add", `${PLAN.gateway}/${PLAN.prefix}`, "dev", BRIDGE);
    ns.run(host, "ip", "link", "set", BRIDGE, "up");
    for (const name of ["g1", "g2"]) {
      const guest = ns.add(name);
      ns.link(host, `v${name}`, guest, "eth0");
      ns.run(host, "ip", "link", "set", `v${name}`, "master", BRIDGE);
      const mac = ns.run(guest, "cat", "/sys/class/net/eth0/address").trim();
      guests[name] = { ns: guest, ip: "", mac };
    }
    fs.writeFileSync(path.join(dir, "udhcpc.sh"), SCRIPT, { mode: 0o755 });
  });
  after(() => {
    ns.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const apply = (text: string) => {
    const file = path.join(dir, "rules.nft");
    fs.writeFileSync(file, text);
    ns.run(host, "nft", "-f", file);
  };
  const ping = (from: string, to: string, source?: string) => ns.ok(from, "busybox", "ping", "-c", "1", "-W", "2", ...(source ? ["-I", source] : []), to);

  test("the table applies in one transaction, and applies again over itself", () => {
    apply(rulesetOf({ id: "t1", kind: "nat", bridge: BRIDGE, ipv4: PLAN, ports: [] }));
    apply(rulesetOf({ id: "t1", kind: "nat", bridge: BRIDGE, ipv4: PLAN, ports: [] }));
    assert.equal(ns.run(host, "nft", "list", "tables").trim(), `table inet ${tableName("t1")}\ntable bridge ${tableName("t1")}`);
  });

  test("dnsmasq leases each guest an address of the DHCP range, writes it to the lease file, and names it in the network's domain", async () => {
    const conf = path.join(dir, "dnsmasq.conf");
    const leaseFile = path.join(dir, "leases");
    const hostsFile = path.join(dir, "hosts");
    fs.writeFileSync(hostsFile, "");
    fs.writeFileSync(conf, dnsmasqConfig({ bridge: BRIDGE, ipv4: PLAN, domain: DOMAIN, router: true, leaseFile, pidFile: path.join(dir, "dnsmasq.pid"), upstream: false, hostsFile }));
    // In the foreground, as the agent will supervise it; its own log on stderr.
    dnsmasq = ns.start(host, "dnsmasq", "--no-daemon", "--log-facility=-", `--conf-file=${conf}`);
    let log = "";
    dnsmasq.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    await waitFor("dnsmasq to start", () => /started, version/.test(log) || dnsmasq!.exitCode !== null, 10_000);
    assert.equal(dnsmasq.exitCode, null, `dnsmasq exited: ${log}`);
    for (const [name, guest] of Object.entries(guests)) {
      const leased = path.join(dir, `${name}.ip`);
      execFileSync("ip", ["netns", "exec", guest.ns, "busybox", "udhcpc", "-i", "eth0", "-q", "-n", "-t", "10", "-T", "1", "-x", `hostname:${name}`, "-s", path.join(dir, "udhcpc.sh")], {
        env: { ...process.env, LEASED: leased },
        stdio: "ignore",
        timeout: 30_000,
      });
      guest.ip = fs.readFileSync(leased, "utf8").trim();
      const n = Number(guest.ip.split(".")[3]);
      assert.ok(guest.ip.startsWith("10.77.0.") && n >= 128 && n <= 254, `${name} got ${guest.ip}, from the range ${PLAN.dhcp!.start}–${PLAN.dhcp!.end}`);
    }
    assert.notEqual(guests.g1!.ip, guests.g2!.ip);
    const leases = await waitFor("both leases in the lease file", () => {
      const all = fs.existsSync(leaseFile) ? parseLeases(fs.readFileSync(leaseFile, "utf8")) : [];
      return all.length === 2 ? all : null;
    }, 5_000);
    assert.deepEqual(
      leases.map((l) => [l.mac, l.ip, l.hostname]).sort(),
      Object.entries(guests).map(([name, g]) => [g.mac, g.ip, name]).sort(),
    );
    const answer = ns.run(guests.g2!.ns, "busybox", "nslookup", `g1.${DOMAIN}`, PLAN.gateway);
    assert.match(answer, new RegExp(`Address:\\s+${guests.g1!.ip.replace(/\./g, "\\.")}`), "g2 finds g1 by name");
  });

  test("guests reach each other and, masqueraded, the world beyond the uplink (which has no route back to them)", () => {
    assert.ok(ping(guests.g1!.ns, guests.g2!.ip), "g1 → g2 on the bridge");
    assert.ok(ping(guests.g1!.ns, WORLD), "g1 → the world");
    assert.match(ns.run(host, "nft", "list", "chain", "inet", tableName("t1"), "postrouting"), /counter packets [1-9]/, "through the masquerade rule");
  });

  test("a guest sending from an address not its network's is dropped, and the rule's counter says so", () => {
    ns.run(guests.g1!.ns, "ip", "addr", "add", "10.99.0.5/32", "dev", "eth0");
    assert.equal(ping(guests.g1!.ns, WORLD, "10.99.0.5"), false, "a spoofed source gets nowhere");
    assert.match(ns.run(host, "nft", "list", "chain", "inet", tableName("t1"), "forward"), /saddr != 10\.77\.0\.0\/24 counter packets [1-9]\d* bytes \d+ drop/);
    ns.run(guests.g1!.ns, "ip", "addr", "del", "10.99.0.5/32", "dev", "eth0");
  });

  test("made isolated (the table replaced in one transaction): the guests still reach each other, nothing beyond", () => {
    apply(rulesetOf({ id: "t1", kind: "isolated", bridge: BRIDGE, ipv4: PLAN, ports: [] }));
    assert.ok(ping(guests.g1!.ns, guests.g2!.ip), "g1 → g2 on the bridge");
    assert.equal(ping(guests.g1!.ns, WORLD), false, "g1 → the world is cut");
    apply(rulesetOf({ id: "t1", kind: "nat", bridge: BRIDGE, ipv4: PLAN, ports: [] }));
    assert.ok(ping(guests.g1!.ns, WORLD), "NAT again");
  });

  test("taken down: no table, no bridge, no dnsmasq, no lease file, and at the end no namespace", async () => {
    dnsmasq!.kill("SIGTERM");
    await waitFor("dnsmasq to stop", () => dnsmasq!.exitCode !== null || dnsmasq!.signalCode !== null, 5_000);
    apply(removalOf("t1"));
    ns.run(host, "ip", "link", "del", BRIDGE);
    fs.rmSync(path.join(dir, "leases"), { force: true });
    assert.equal(ns.run(host, "nft", "list", "tables").trim(), "");
    assert.equal(ns.ok(host, "ip", "link", "show", BRIDGE), false);
    assert.equal(execFileSync("ip", ["netns", "pids", host], { encoding: "utf8" }).trim(), "", "no process left in the host namespace");
    apply(removalOf("t1")); // removing what is gone is no error
    ns.cleanup();
    assert.deepEqual(namespacesNamed(ns.prefix), []);
  });
});

describe("the network doctor, in a network namespace of its own", () => {
  const ns = new Namespaces();
  let inside = "";
  const host: DoctorHost = {
    run: async (command, args) => ns.run(inside, command, ...args),
    readFile: async (file) => {
      try {
        return ns.run(inside, "cat", file);
      } catch {
        return null;
      }
    },
  };
  const ids = async () => (await diagnose(host)).map((f) => f.id).sort();

  before(() => {
    inside = ns.add("d");
  });
  after(() => ns.cleanup());

  test("a new namespace forwards nothing: the doctor says so, with the fix; once on, it says nothing", async () => {
    const off = (await diagnose(host)).find((f) => f.id === "ip-forward");
    assert.match(off?.fix ?? "", /sysctl -w net\.ipv4\.ip_forward=1/);
    ns.run(inside, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    assert.deepEqual(await ids(), [], "nothing else is wrong here: tools, tun, modules and CAP_NET_ADMIN are there");
  });

  test("another firewall's forward chain with a DROP policy is named, with the rules that let guests through; ours is not", async () => {
    const file = path.join(os.tmpdir(), `${ns.prefix}-foreign.nft`);
    fs.writeFileSync(file, "table ip filter {\n  chain FORWARD {\n    type filter hook forward priority 0; policy drop;\n  }\n}\n");
    try {
      ns.run(inside, "nft", "-f", file);
      const [drop, ...rest] = await diagnose(host);
      assert.deepEqual(rest, []);
      assert.equal(drop?.id, "foreign-drop");
      assert.match(drop!.problem, /chain FORWARD of table ip filter drops what it does not accept \(iptables: Docker, ufw/);
      assert.match(drop!.fix, /^nft insert rule ip filter FORWARD iifname "gh-\*" accept && nft insert rule ip filter FORWARD oifname "gh-\*" accept/);
      ns.run(inside, "nft", "delete", "table", "ip", "filter");
      // A network's own table may drop in its forward chain: that is not a foreign firewall.
      fs.writeFileSync(file, `table inet ${tableName("mine")} {\n  chain forward {\n    type filter hook forward priority 0; policy drop;\n  }\n}\n`);
      ns.run(inside, "nft", "-f", file);
      assert.deepEqual(await ids(), []);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});

function spawnable(tool: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
