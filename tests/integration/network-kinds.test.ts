/**
 * Bridged networks, VLAN refusals and IPv6 with the agent's Networks manager and the real
 * kernel, nft and dnsmasq, the whole manager run inside a network namespace the test makes
 * (stand-in guests are namespaces on veths named as the launcher names taps; demo guests in
 * QEMU are network-guests-kinds.test.ts):
 *   - bridged: the "host" has its own bridge br0 (the LAN, whose DHCP server the test runs);
 *     a guest's port joins it and gets the LAN's lease; the agent makes no bridge, address,
 *     dnsmasq or NAT, checks only the port's MAC, and leaves br0 when the network goes. A
 *     bridge that is not there (or is no bridge), a VLAN on a bridge that does not filter
 *     VLANs or on a NAT network, and a change of kind are refused with nothing changed. The
 *     launcher (open-taps.py) makes a VLAN card's tap that VLAN's untagged port.
 *   - IPv6: a NAT network's bridge has its /64's ::1, dnsmasq advertises the prefix, a guest
 *     takes a SLAAC address in it, reaches the gateway and (masqueraded) a world with no
 *     route back; a spoofed IPv6 source and a guest's router advertisement are dropped and
 *     counted (the bridge never hears the advertisement); an isolated network's guests get the prefix but no default route; the doctor
 *     names IPv6 forwarding once a network has IPv6.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { diagnose } from "../../server/agent/networks/doctor";
import { Networks, processAlive, type ManagedNetwork, type NetHost } from "../../server/agent/networks/manager";
import { bridgeName, tableName } from "../../server/agent/networks/nft";
import { tapName } from "../../server/agent/networks/ports";
import { planIpv6 } from "../../server/domain/network-plan";
import { waitFor } from "../helpers/agent";
import { Namespaces, namespacesNamed } from "../helpers/netns";

const LAN: ManagedNetwork = { id: "lan1", kind: "bridged", bridge: "br0" };
const SIX: ManagedNetwork = { id: "six1", kind: "nat", subnet: "10.81.0.0/24", dhcp: "auto", domain: "six.test", ipv6: true };
const PREFIX = planIpv6("six1");
const BASE = PREFIX.prefix.replace(/::\/64$/, "");
/** A world beyond the host's uplink, over IPv6, that knows no way back to the guests' /64. */
const WORLD6 = "fd00:99::2";

const isCode = (code: string, text: RegExp) => (err: Error & { code?: string }) => err.code === code && text.test(err.message);

describe("bridged networks and IPv6, the agent's manager in a network namespace", () => {
  const ns = new Namespaces();
  let inside = "";
  let dir = "";
  const host: NetHost = {
    run: async (command, args) => execFileSync("ip", ["netns", "exec", inside, command, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 }),
    alive: processAlive,
  };
  const tables = () => ns.run(inside, "nft", "list", "tables").trim().split("\n").filter(Boolean);
  /** The packets the rules with this comment counted, in the network's table of `family`. */
  const counted = (family: "inet" | "bridge", id: string, comment: string) =>
    [...ns.run(inside, "nft", "list", "table", family, tableName(id)).matchAll(new RegExp(`packets (\\d+) bytes \\d+ drop comment "${comment}"`, "g"))].reduce((n, m) => n + Number(m[1]), 0);
  /**
   * A stand-in guest: a namespace whose eth0 is a veth whose host end is named as the
   * launcher names the tap of `guest`'s first card, and (as the launcher does) on `bridge`.
   */
  const standIn = (name: string, guest: string, bridge: string): { ns: string; mac: string } => {
    const g = ns.add(name);
    ns.link(inside, tapName(guest, 0), g, "eth0");
    ns.run(inside, "ip", "link", "set", "dev", tapName(guest, 0), "master", bridge);
    return { ns: g, mac: ns.run(g, "cat", "/sys/class/net/eth0/address").trim() };
  };
  const busybox = (g: string, ...args: string[]) => ns.run(g, "busybox", ...args);
  const pings = (g: string, ...args: string[]) => ns.ok(g, "busybox", "ping", "-c", "1", "-W", "2", ...args);

  before(() => {
    inside = ns.add("k");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-kinds-"));
    // The host's own bridge with the LAN on it: its address and the LAN's DHCP server stand in for the LAN's router.
    ns.run(inside, "ip", "link", "add", "br0", "type", "bridge");
    ns.run(inside, "ip", "addr", "add", "192.168.77.1/24", "dev", "br0");
    ns.run(inside, "ip", "link", "set", "br0", "up");
    ns.start(inside, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br0", "--bind-interfaces", "--except-interface=lo", `--dhcp-leasefile=${path.join(dir, "lan.leases")}`, "--dhcp-range=192.168.77.100,192.168.77.150,1h");
    ns.run(inside, "ip", "link", "add", "notbr", "type", "veth", "peer", "name", "notbr1");
  });
  after(() => {
    ns.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("a bridged network on br0: no bridge, address, dnsmasq or NAT of the agent's, only its ports' table", async () => {
    const networks = new Networks(dir, host);
    const made = await networks.apply(LAN);
    assert.deepEqual(made, { bridge: "br0", plan: null, dnsmasqPid: null });
    assert.deepEqual(tables(), [`table bridge ${tableName("lan1")}`], "no inet table: no NAT, no filter of the host's");
    assert.deepEqual(networks.list(), [{ id: "lan1", kind: "bridged", subnet: null, bridge: "br0", gateway: null, dhcp: null, domain: null, ipv6: null, dnsmasq: false }]);
    assert.equal(ns.run(inside, "ip", "-o", "-4", "addr", "show", "dev", "br0").match(/inet /g)?.length, 1, "br0 keeps its one address, the LAN's");
    assert.equal(ns.ok(inside, "ip", "link", "show", bridgeName("lan1")), false, "no gh- bridge is made");
    assert.equal(fs.existsSync(path.join(dir, "lan1", "dnsmasq.conf")), false);
  });

  test("a guest's port on it joins br0 and takes the LAN's lease; a frame with another MAC is dropped and counted", async () => {
    const networks = new Networks(dir, host);
    const guest = standIn("g1", "languest1", "br0");
    const [port] = await networks.plug({ id: "languest1", name: "lan-guest" }, [{ index: 0, mac: guest.mac, network: "lan1" }]);
    assert.deepEqual([port!.bridge, port!.ip, port!.name, port!.tap], ["br0", null, "lan-guest", tapName("languest1", 0)]);
    assert.match(ns.run(inside, "ip", "-o", "link", "show", "dev", port!.tap), /master br0/);
    busybox(guest.ns, "ip", "link", "set", "eth0", "up");
    busybox(guest.ns, "udhcpc", "-i", "eth0", "-q", "-n", "-t", "10", "-T", "1", "-s", "/bin/true");
    const lease = await waitFor("the LAN's lease", () => new RegExp(`^\\d+ ${guest.mac} (192\\.168\\.77\\.1\\d\\d) `, "m").exec(fs.readFileSync(path.join(dir, "lan.leases"), "utf8"))?.[1], 5_000);
    busybox(guest.ns, "ip", "addr", "add", `${lease}/24`, "dev", "eth0");
    assert.equal(pings(guest.ns, "192.168.77.1"), true, "the guest reaches the LAN");
    const before = counted("bridge", "lan1", "spoofed MAC");
    busybox(guest.ns, "ip", "link", "set", "eth0", "address", "52:54:00:77:77:77");
    ns.run(inside, "ip", "neigh", "flush", "dev", "br0");
    assert.equal(pings(guest.ns, "192.168.77.1"), false, "another MAC does not pass");
    assert.ok(counted("bridge", "lan1", "spoofed MAC") > before, "and is counted");
    busybox(guest.ns, "ip", "link", "set", "eth0", "address", guest.mac);
    assert.equal(pings(guest.ns, "192.168.77.1"), true, "its own MAC passes again");
  });

  test("refused, with nothing changed: a bridge the host lacks, an interface that is no bridge, one of the agent's own, a VLAN on a bridge that filters none or on a NAT network, a change of kind", async () => {
    const networks = new Networks(dir, host);
    const before = { tables: tables(), ids: fs.readdirSync(dir).sort(), ports: networks.ports("lan1") };
    await assert.rejects(networks.apply({ id: "lan2", kind: "bridged", bridge: "br9" }), isCode("invalid-input", /This host has no interface br9\. Make the bridge first/));
    await assert.rejects(networks.apply({ id: "lan2", kind: "bridged", bridge: "notbr" }), isCode("invalid-input", /notbr is a veth interface, not a bridge/));
    await assert.rejects(networks.apply({ id: "lan2", kind: "bridged", bridge: bridgeName("x") }), isCode("invalid-input", /Guesthouse's own bridges/));
    await assert.rejects(networks.apply({ id: "lan2", kind: "bridged", bridge: "br0; rm" }), isCode("invalid-input", /not an interface name/));
    await assert.rejects(networks.apply({ ...SIX, id: "lan1" }), isCode("conflict", /kind does not change/));
    const vlanCard = { index: 0, mac: "52:54:00:77:00:02", network: "lan1", vlan: 10 };
    await assert.rejects(networks.plug({ id: "languest2", name: "tagged" }, [vlanCard]), isCode("invalid-input", /VLAN 10, but the host's bridge br0 does not filter VLANs \(vlan_filtering 0\).*ip link set dev br0 type bridge vlan_filtering 1/));
    assert.deepEqual({ tables: tables(), ids: fs.readdirSync(dir).sort(), ports: networks.ports("lan1") }, before);
    await networks.apply({ id: "nat9", kind: "nat", subnet: "10.89.0.0/24", dhcp: "auto", domain: "nine.test" });
    await assert.rejects(networks.plug({ id: "languest2", name: "tagged" }, [{ ...vlanCard, network: "nat9" }]), isCode("invalid-input", /VLAN 10, but its network is nat: VLAN tags are for cards on bridged networks/));
    assert.deepEqual(networks.ports("nat9"), []);
    await networks.remove("nat9");
  });

  test("the launcher makes a card's tap its VLAN's untagged port and takes the bridge's default VLAN away (the bridge command stood in for: this kernel's bridges filter no VLANs)", () => {
    const bin = path.join(dir, "fake-bin");
    const log = path.join(dir, "bridge.log");
    fs.mkdirSync(bin, { recursive: true });
    // What a VLAN-filtering bridge lists for a port just joined and given VLAN 10: its default VLAN 1, and 10.
    fs.writeFileSync(path.join(bin, "bridge"), `#!/bin/sh\necho "$*" >> ${log}\ncase "$*" in "-j vlan show dev "*) echo '[{"ifname":"'"$5"'","vlans":[{"vlan":1,"flags":["PVID","Egress Untagged"]},{"vlan":10,"flags":["PVID","Egress Untagged"]}]}]' ;; esac\n`, { mode: 0o755 });
    const launch = (taps: object[]) =>
      execFileSync("ip", ["netns", "exec", inside, "env", `PATH=${bin}:${process.env.PATH}`, "python3", path.resolve("server/agent/open-taps.py"), JSON.stringify({ uid: null, gid: null, taps }), "sh", "-c", "ip -o link show master br0"], { encoding: "utf8" });
    const shown = launch([{ tap: "ghtvlan00000001", bridge: "br0", vlan: 10, fd: 3 }, { tap: "ghtvlan00000002", bridge: "br0", fd: 4 }]);
    assert.match(shown, /ghtvlan00000001: <[^>]*\bUP\b[^>]*>.* master br0 /, "the tap is on br0 and up while QEMU (here sh) holds it");
    assert.match(shown, /ghtvlan00000002: .*master br0/);
    assert.deepEqual(fs.readFileSync(log, "utf8").trim().split("\n"), ["vlan add dev ghtvlan00000001 vid 10 pvid untagged", "-j vlan show dev ghtvlan00000001", "vlan del dev ghtvlan00000001 vid 1"], "a tap without a VLAN is left as the bridge makes it");
    assert.doesNotMatch(ns.run(inside, "ip", "-o", "link", "show"), /ghtvlan/, "the taps went with the last descriptor");
  });

  test("removed (its guest gone): its table goes, br0 stays with its address and its other ports", async () => {
    const networks = new Networks(dir, host);
    await assert.rejects(networks.remove("lan1"), isCode("conflict", /lan-guest/));
    await networks.unplug("languest1");
    await networks.remove("lan1");
    assert.deepEqual(tables(), []);
    assert.match(ns.run(inside, "ip", "-o", "-4", "addr", "show", "dev", "br0"), /192\.168\.77\.1\/24/);
    assert.match(ns.run(inside, "ip", "-o", "link", "show", "master", "br0"), new RegExp(tapName("languest1", 0)), "the admin's bridge and what is on it stay");
    assert.equal(fs.existsSync(path.join(dir, "lan1")), false);
  });

  test("an IPv6 NAT network: the bridge has the /64's ::1, dnsmasq advertises it, a guest takes a SLAAC address and reaches the gateway and, masqueraded, the world", async () => {
    // The uplink to a world over IPv6 only as far as the host: the world has no route back to the guests' /64.
    const world = ns.add("w");
    ns.link(inside, "up0", world, "eth0");
    ns.run(inside, "ip", "-6", "addr", "add", "fd00:99::1/64", "dev", "up0", "nodad");
    ns.run(world, "ip", "-6", "addr", "add", `${WORLD6}/64`, "dev", "eth0", "nodad");
    // The doctor names IPv6 forwarding (off in a new namespace) once a network has IPv6; the host follows its fix.
    const doctor = { run: host.run, readFile: async (file: string) => ns.run(inside, "cat", file) };
    assert.equal((await diagnose(doctor, { ipv6: false })).some((f) => f.id === "ip6-forward"), false, "not while no network has IPv6");
    assert.match((await diagnose(doctor, { ipv6: true })).find((f) => f.id === "ip6-forward")?.fix ?? "none", /^sysctl -w net\.ipv6\.conf\.all\.forwarding=1/);
    ns.run(inside, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1");
    assert.equal((await diagnose(doctor, { ipv6: true })).some((f) => f.id === "ip6-forward"), false);
    const networks = new Networks(dir, host);
    await networks.apply(SIX);
    assert.match(ns.run(inside, "ip", "-6", "addr", "show", "dev", bridgeName("six1"), "scope", "global"), new RegExp(`inet6 ${BASE}::1/64`));
    assert.equal(networks.list().find((n) => n.id === "six1")?.ipv6, PREFIX.prefix);
    const conf = fs.readFileSync(path.join(dir, "six1", "dnsmasq.conf"), "utf8");
    assert.match(conf, /^enable-ra$/m);
    assert.match(conf, new RegExp(`^dhcp-range=${BASE}::,ra-only,64,1h$`, "m"));

    const guest = standIn("g6", "sixguest1", bridgeName("six1"));
    await networks.plug({ id: "sixguest1", name: "six" }, [{ index: 0, mac: guest.mac, network: "six1" }]);
    busybox(guest.ns, "ip", "link", "set", "eth0", "up");
    const slaac = await waitFor("the guest's SLAAC address", () => new RegExp(`inet6 (${BASE}:[0-9a-f:]+)/64`).exec(busybox(guest.ns, "ip", "-6", "addr", "show", "dev", "eth0"))?.[1], 15_000, 200);
    assert.match(busybox(guest.ns, "ip", "-6", "route"), /default via fe80::/, "the host is its default router");
    // Bounded: the bridge's own address may still be tentative (duplicate address detection) on a busy host.
    assert.equal(await waitFor("the gateway over IPv6", () => pings(guest.ns, "-6", PREFIX.gateway), 10_000, 0), true, "it reaches the gateway over IPv6");
    // (The world's new link takes a moment to resolve its neighbours: its first answer may be lost.)
    await waitFor("the guest to reach the world over IPv6, masqueraded", () => pings(guest.ns, "-6", WORLD6), 10_000, 0);
    assert.match(ns.run(inside, "nft", "list", "table", "inet", tableName("six1")), new RegExp(`ip6 saddr ${PREFIX.prefix.replace(/[:/]/g, "\\$&")} ip6 daddr != \\S+ counter packets [1-9]\\d* bytes \\d+ masquerade`));
    // The host's neighbour table has the guest's address now: the address watch reports it (watch.ts).
    const neighbours = JSON.parse(ns.run(inside, "ip", "-j", "-6", "neigh", "show", "dev", bridgeName("six1"))) as Array<{ dst: string; lladdr?: string }>;
    assert.ok(neighbours.some((n) => n.dst === slaac && n.lladdr === guest.mac), JSON.stringify(neighbours));

    const spoofed = counted("inet", "six1", "spoofed source");
    ns.run(guest.ns, "ip", "-6", "addr", "add", "fd77::5/64", "dev", "eth0", "nodad");
    assert.equal(pings(guest.ns, "-6", "-I", "fd77::5", WORLD6), false, "a source outside the /64 does not pass");
    assert.ok(counted("inet", "six1", "spoofed source") > spoofed, "and is counted");
  });

  test("a guest's router advertisement is dropped at its port and counted: the bridge never hears it", async () => {
    const networks = new Networks(dir, host);
    const bridge = bridgeName("six1");
    const rogue = standIn("r6", "sixguest2", bridge);
    await networks.plug({ id: "sixguest2", name: "rogue" }, [{ index: 0, mac: rogue.mac, network: "six1" }]);
    busybox(rogue.ns, "ip", "link", "set", "eth0", "up");
    await waitFor("the rogue's link-local address", () => /inet6 fe80::/.test(busybox(rogue.ns, "ip", "-6", "addr", "show", "dev", "eth0")) && !busybox(rogue.ns, "ip", "-6", "addr", "show", "dev", "eth0").includes("tentative"), 10_000, 200);
    // What reaches the bridge from the rogue's MAC, by ICMPv6 type (133 solicitation, 134 advertisement), for 3 s.
    const heard = ns.start(inside, "python3", "-c", [
      "import socket, sys",
      "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))",
      `s.bind((${JSON.stringify(bridge)}, 0))`,
      "s.settimeout(3)",
      "print('listening', flush=True)",
      "try:",
      "  while True:",
      "    d = s.recv(2000)",
      `    if d[6:12] == bytes.fromhex(${JSON.stringify(rogue.mac.replace(/:/g, ""))}) and d[20] == 58: print('icmpv6', d[54], flush=True)`,
      "except socket.timeout: pass",
    ].join("\n"));
    let lines = "";
    heard.stdout!.on("data", (d: Buffer) => (lines += String(d)));
    await waitFor("the listener", () => lines.includes("listening"), 5_000, 20);
    const before = counted("bridge", "six1", "spoofed router advertisement");
    // An RA for fd66:6666:6666:6666::/64 with a router lifetime of 1800 s, to every node, then a solicitation (which passes).
    const packets = [
      "import socket, struct",
      "s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)",
      "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)",
      "ra = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0)",
      "pi = struct.pack('!BBBBIII', 3, 4, 64, 0xc0, 3600, 3600, 0) + socket.inet_pton(socket.AF_INET6, 'fd66:6666:6666:6666::')",
      "for _ in range(3): s.sendto(ra + pi, ('ff02::1', 0, 0, socket.if_nametoindex('eth0')))",
      "s.sendto(struct.pack('!BBHI', 133, 0, 0, 0), ('ff02::2', 0, 0, socket.if_nametoindex('eth0')))",
    ].join("\n");
    ns.run(rogue.ns, "python3", "-c", packets);
    await new Promise<void>((resolve) => heard.once("exit", () => resolve()));
    assert.ok(counted("bridge", "six1", "spoofed router advertisement") >= before + 3, "each advertisement is counted");
    assert.match(lines, /icmpv6 133/, "its router solicitation reaches the bridge");
    assert.doesNotMatch(lines, /icmpv6 134/, "its advertisements do not");
    await networks.unplug("sixguest1");
    await networks.unplug("sixguest2");
  });

  test("an isolated IPv6 network advertises its prefix with no default route; removed, nothing of either is left", async () => {
    const networks = new Networks(dir, host);
    const iso: ManagedNetwork = { id: "six2", kind: "isolated", subnet: "10.82.0.0/24", dhcp: "auto", domain: "iso.test", ipv6: true };
    await networks.apply(iso);
    assert.match(fs.readFileSync(path.join(dir, "six2", "dnsmasq.conf"), "utf8"), new RegExp(`^ra-param=${bridgeName("six2")},60,0$`, "m"));
    const guest = standIn("i6", "isoguest1", bridgeName("six2"));
    busybox(guest.ns, "ip", "link", "set", "eth0", "up");
    const base = planIpv6("six2").prefix.replace(/::\/64$/, "");
    await waitFor("the guest's SLAAC address", () => busybox(guest.ns, "ip", "-6", "addr", "show", "dev", "eth0").includes(base), 15_000, 200);
    assert.equal(/^default/m.test(busybox(guest.ns, "ip", "-6", "route")), false, "no default route out of an isolated network");
    assert.equal(pings(guest.ns, "-6", planIpv6("six2").gateway), true, "the host is reached");
    for (const id of ["six1", "six2"]) await networks.remove(id);
    assert.deepEqual(tables(), []);
    assert.equal(ns.ok(inside, "ip", "link", "show", bridgeName("six1")), false);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => /^[a-z0-9]+$/.test(f)), [], "no network's folder is left");
    ns.cleanup();
    assert.deepEqual(namespacesNamed(ns.prefix), []);
  });
});
