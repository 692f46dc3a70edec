/**
 * Bridged networks, cards' VLANs and IPv6, the pure parts: the VLAN list an admin grants, a
 * host bridge's name, a network's IPv6 /64, a card's VLAN in the spec, the edit form and a
 * definition (1 to 4094, on a managed card only), the network form's kinds, the tables and
 * dnsmasq's configuration each kind gets, and the doctor's IPv6 forwarding. The real kernel
 * runs them in tests/integration/network-kinds.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { dnsmasqConfig } from "../../server/agent/networks/dnsmasq";
import { diagnose, type DoctorHost } from "../../server/agent/networks/doctor";
import { rulesetOf } from "../../server/agent/networks/nft";
import { formatVlanList, parseHostBridge, parseVlanList, planIpv4, planIpv6, vlanInList } from "../../server/domain/network-plan";
import type { ManagedNicSpec } from "../../server/domain/types";
import { editHardwareInput, guestDefinitionSchema, guestSpecSchema, networkInput, parseOrThrow } from "../../server/domain/validation";
import { testDefinition, testSpec } from "../helpers/specs";

const refused = (fn: () => unknown, message: RegExp) => assert.throws(fn, (err: Error & { code?: string }) => err.code === "invalid-input" && message.test(err.message));
const card = (vlan?: number): ManagedNicSpec => ({ mac: "52:54:00:12:34:56", model: "virtio", mode: "managed", network: "lan1", ...(vlan !== undefined ? { vlan } : {}), isolated: false, forwards: [] });
const PORT = { tap: "ghtaaaaaaaaaaaa", mac: "52:54:00:12:34:56", ip: null, guest: "g1", name: "g1" };

describe("bridged networks and VLANs", () => {
  test("the VLANs an admin grants: ids and ranges, sorted and merged, written one way; each 1 to 4094", () => {
    assert.deepEqual(parseVlanList(""), []);
    assert.deepEqual(parseVlanList(" 20, 10 ,100-199, 150-250,11"), [[10, 11], [20, 20], [100, 250]]);
    assert.equal(formatVlanList(parseVlanList("20,10,100 - 199,11")), "10-11,20,100-199");
    assert.equal(vlanInList(150, parseVlanList("100-199")), true);
    assert.equal(vlanInList(99, parseVlanList("100-199")), false);
    for (const bad of ["0", "4095", "10-5", "ten", "1;2"]) refused(() => parseVlanList(bad), /VLAN/);
  });

  test("a host bridge is an interface name, never one of the agent's own", () => {
    assert.equal(parseHostBridge("br0"), "br0");
    assert.equal(parseHostBridge("vmbr0.100"), "vmbr0.100");
    refused(() => parseHostBridge("gh-0123456789a"), /Guesthouse's own bridges/);
    for (const bad of ["", "br 0", "br0/x", "-br", "a".repeat(16), "../x"]) refused(() => parseHostBridge(bad), /not an interface name/);
  });

  test("a card's VLAN is 1 to 4094, on a managed card; a user-mode card has none", () => {
    assert.equal((parseOrThrow(guestSpecSchema, testSpec("vlanguest01", { nics: [card(1)] })).nics[0] as ManagedNicSpec).vlan, 1);
    assert.equal((parseOrThrow(guestSpecSchema, testSpec("vlanguest01", { nics: [card(4094)] })).nics[0] as ManagedNicSpec).vlan, 4094);
    assert.equal("vlan" in parseOrThrow(guestSpecSchema, testSpec("vlanguest01", { nics: [card()] })).nics[0]!, false, "absent stays absent");
    for (const bad of [0, 4095, -1, 1.5]) refused(() => parseOrThrow(guestSpecSchema, testSpec("vlanguest01", { nics: [card(bad)] })), /1 to 4094/);
    const hw = parseOrThrow(guestDefinitionSchema, testDefinition("v", [], { nics: [{ model: "virtio", network: "lan", vlan: 10, isolated: false, forwards: [] }] }));
    assert.equal(hw.nics[0]!.vlan, 10);
    refused(() => parseOrThrow(guestDefinitionSchema, testDefinition("v", [], { nics: [{ model: "virtio", network: "lan", vlan: 4095, isolated: false, forwards: [] }] })), /1 to 4094/);
    refused(() => parseOrThrow(guestDefinitionSchema, testDefinition("v", [], { nics: [{ model: "virtio", vlan: 10, isolated: false, forwards: [] }] })), /user-mode networking: a VLAN tag is for a card on a bridged network/);
    const { guesthouse: _g, name: _n, disks: _d, ...rest } = testDefinition("v");
    const edit = { ...rest, disks: [], nics: [{ model: "virtio", network: "user", vlan: 0, isolated: false, forwards: [] }] };
    refused(() => parseOrThrow(editHardwareInput, edit), /1 to 4094/);
  });

  test("the network form: a bridged network names a bridge and VLANs, no subnet; an unknown kind is named", () => {
    assert.deepEqual(parseOrThrow(networkInput, { name: "lan", kind: "bridged", bridge: " br0 ", vlans: "10,20" }), { name: "lan", kind: "bridged", bridge: "br0", vlans: "10,20", description: "" });
    assert.equal(parseOrThrow(networkInput, { name: "six", kind: "nat", subnet: "10.1.0.0/24", dhcp: "auto", domain: "x.test", ipv6: true }).kind, "nat");
    refused(() => parseOrThrow(networkInput, { name: "lan", kind: "bridged", bridge: "br0", subnet: "10.1.0.0/24" }), /subnet/);
    refused(() => parseOrThrow(networkInput, { name: "lan", kind: "routed" }), /kind is "nat", "isolated" or "bridged"/);
  });

  test("a bridged network's rules: its ports' MAC checks only, no inet table, no router advertisement rule (a LAN may have a guest for its router)", () => {
    const text = rulesetOf({ id: "lan1", kind: "bridged", bridge: "br0", ports: [PORT] });
    assert.match(text, /^add table inet guesthouse_lan1\ndelete table inet guesthouse_lan1\n/, "an inet table, should there be one, goes");
    assert.doesNotMatch(text, /^table inet/m);
    assert.match(text, /iifname "ghtaaaaaaaaaaaa" ether saddr != 52:54:00:12:34:56 counter drop comment "spoofed MAC"/);
    assert.doesNotMatch(text, /nd-router-advert|masquerade|ip saddr/);
  });
});

describe("IPv6 on NAT and isolated networks", () => {
  test("a network's /64 is unique local (fd00::/8), from its id, the same every time", () => {
    const plan = planIpv6("lab");
    assert.match(plan.prefix, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/);
    assert.equal(plan.gateway, plan.prefix.replace("::/64", "::1"));
    assert.deepEqual(planIpv6("lab"), plan);
    assert.notEqual(planIpv6("lab2").prefix, plan.prefix);
  });

  test("a NAT network with IPv6 masquerades its /64 and checks guests' IPv6 sources; one without forwards no IPv6; both drop guests' router advertisements", () => {
    const six = planIpv6("six1");
    const base = { id: "six1", kind: "nat" as const, bridge: "gh-x", ipv4: planIpv4("10.81.0.0/24", "auto"), ports: [{ ...PORT, ip: "10.81.0.128" }] };
    const withV6 = rulesetOf({ ...base, ipv6: six });
    assert.ok(withV6.includes(`ip6 saddr ${six.prefix} ip6 daddr != ${six.prefix} counter masquerade`));
    assert.ok(withV6.includes(`iifname "gh-x" ip6 saddr != ${six.prefix} counter drop comment "spoofed source"`));
    assert.ok(withV6.includes(`iifname "gh-x" ip6 saddr != ${six.prefix} ip6 saddr != fe80::/10 ip6 saddr != :: counter drop comment "spoofed source"`));
    const without = rulesetOf(base);
    assert.match(without, /iifname "gh-x" meta nfproto ipv6 counter drop comment "no IPv6"/);
    assert.doesNotMatch(without, /ip6 /);
    for (const text of [withV6, without, rulesetOf({ ...base, kind: "isolated", ipv6: six })]) {
      assert.match(text, /iifname "ghtaaaaaaaaaaaa" icmpv6 type nd-router-advert counter drop comment "spoofed router advertisement"/);
    }
  });

  test("dnsmasq advertises the /64 for SLAAC only, answers DNS on its ::1 too, and on an isolated network is no default router", () => {
    const six = planIpv6("six1");
    const setup = { bridge: "gh-x", ipv4: planIpv4("10.81.0.0/24", "auto"), ipv6: six, domain: "six.test", router: true, leaseFile: "/l", pidFile: "/p", upstream: true, hostsFile: "/h" };
    const nat = dnsmasqConfig(setup);
    assert.match(nat, new RegExp(`^listen-address=${six.gateway}$`, "m"));
    assert.match(nat, /^enable-ra$/m);
    assert.match(nat, new RegExp(`^dhcp-range=${six.prefix.replace("/64", "")},ra-only,64,1h$`, "m"));
    assert.match(nat, /^ra-param=gh-x,60$/m);
    assert.match(dnsmasqConfig({ ...setup, router: false }), /^ra-param=gh-x,60,0$/m);
    assert.doesNotMatch(dnsmasqConfig({ ...setup, ipv6: null }), /enable-ra|ra-param|listen-address=.*:/);
  });

  test("the doctor names IPv6 forwarding only once a network has IPv6", async () => {
    const host = (forward6: string): DoctorHost => ({
      run: async (command, args) => (command === "nft" && args.join(" ") === "-j list ruleset" ? '{"nftables":[]}' : ""),
      readFile: async (file) =>
        file === "/proc/sys/net/ipv6/conf/all/forwarding" ? forward6 : file === "/proc/sys/net/ipv4/ip_forward" ? "1\n" : file === "/proc/self/status" ? "CapEff:\t000001ffffffffff\n" : null,
    });
    assert.deepEqual(await diagnose(host("0\n")), []);
    const [finding] = await diagnose(host("0\n"), { ipv6: true });
    assert.equal(finding?.id, "ip6-forward");
    assert.match(finding!.fix, /^sysctl -w net\.ipv6\.conf\.all\.forwarding=1/);
    assert.deepEqual(await diagnose(host("1\n"), { ipv6: true }), []);
  });
});
