/** A managed network's address plan: subnets, gateways, DHCP ranges, clashes, VLANs and MACs, each refusal naming why. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { assertUnicastMac, clashOf, overlaps, parseSubnet, parseVlan, planIpv4 } from "../../server/domain/network-plan";

const refused = (fn: () => unknown, message: RegExp) => assert.throws(fn, (err: Error & { code?: string }) => err.code === "invalid-input" && message.test(err.message));

describe("network plan", () => {
  test("a /24 gets the first host as its gateway and, auto, the upper half of its hosts for DHCP", () => {
    assert.deepEqual(planIpv4("10.77.0.0/24", "auto"), { subnet: "10.77.0.0/24", prefix: 24, gateway: "10.77.0.1", netmask: "255.255.255.0", dhcp: { start: "10.77.0.128", end: "10.77.0.254" } });
    assert.deepEqual(planIpv4("192.168.8.0/29", "auto").dhcp, { start: "192.168.8.4", end: "192.168.8.6" }, "hosts .2 to .6 after the gateway: the upper three");
    assert.equal(planIpv4("172.16.0.0/16", null).dhcp, null);
  });

  test("a DHCP range given is kept when it is inside the hosts after the gateway, in order", () => {
    assert.deepEqual(planIpv4("10.1.2.0/24", { start: "10.1.2.10", end: "10.1.2.20" }).dhcp, { start: "10.1.2.10", end: "10.1.2.20" });
    refused(() => planIpv4("10.1.2.0/24", { start: "10.1.2.1", end: "10.1.2.20" }), /outside 10\.1\.2\.0\/24's hosts after the gateway/);
    refused(() => planIpv4("10.1.2.0/24", { start: "10.1.2.10", end: "10.1.3.20" }), /end 10\.1\.3\.20 is outside/);
    refused(() => planIpv4("10.1.2.0/24", { start: "10.1.2.10", end: "10.1.2.255" }), /outside/);
    refused(() => planIpv4("10.1.2.0/24", { start: "10.1.2.30", end: "10.1.2.20" }), /starts after it ends/);
    refused(() => planIpv4("10.1.2.0/24", { start: "ten", end: "10.1.2.20" }), /not an IPv4 address/);
  });

  test("malformed, public, too wide or too narrow subnets, and host bits set, are refused, naming why", () => {
    refused(() => parseSubnet("10.77.0.0"), /not an IPv4 subnet/);
    refused(() => parseSubnet("10.77.0.0/33"), /not an IPv4 subnet/);
    refused(() => parseSubnet("banana"), /not an IPv4 subnet/);
    refused(() => parseSubnet("8.8.8.0/24"), /not a private range/);
    refused(() => parseSubnet("10.0.0.0/8"), /\/16 to \/29/);
    refused(() => parseSubnet("10.0.0.0/30"), /\/16 to \/29/);
    refused(() => parseSubnet("10.77.0.5/24"), /host bits set: the subnet is 10\.77\.0\.0\/24/);
  });

  test("overlap is symmetric and true exactly when the ranges share an address", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 16, max: 29 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 16, max: 29 }), (a, pa, b, pb) => {
        const x = parseSubnet(`10.${a}.0.0/${Math.min(pa, 24)}`);
        const y = parseSubnet(`10.${b}.0.0/${Math.min(pb, 24)}`);
        const shared = x.first <= y.last && y.first <= x.last;
        return overlaps(x.cidr, y.cidr) === shared && overlaps(y.cidr, x.cidr) === shared;
      }),
    );
    assert.equal(overlaps("10.77.0.0/24", "10.77.0.128/25"), true);
    assert.equal(overlaps("10.77.0.0/24", "10.77.1.0/24"), false);
  });

  test("a clash names the other network or the host's route it would hide", () => {
    const others = [{ name: "lab", subnet: "10.77.0.0/24" }];
    const routes = [{ dst: "default", dev: "eth0" }, { dst: "192.168.1.0/24", dev: "eth0" }, { dst: "172.17.0.0/16", dev: "docker0" }, { dst: "10.200.0.7" }];
    assert.equal(clashOf("10.77.0.0/25", others, routes), "the network lab (10.77.0.0/24)");
    assert.equal(clashOf("172.17.5.0/24", others, routes), "the host's route to 172.17.0.0/16 (on docker0)");
    assert.equal(clashOf("10.200.0.0/24", others, routes), "the host's route to 10.200.0.7");
    assert.equal(clashOf("10.78.0.0/24", others, routes), null, "the default route clashes with nothing");
  });

  test("VLANs are 1 to 4094; MACs are unicast and not all zeros", () => {
    assert.equal(parseVlan(1), 1);
    assert.equal(parseVlan("4094"), 4094);
    for (const bad of [0, 4095, -1, 1.5, "x", "12345", null]) refused(() => parseVlan(bad), /1 to 4094/);
    assertUnicastMac("52:54:00:12:34:56");
    refused(() => assertUnicastMac("01:00:5e:00:00:01"), /multicast/);
    refused(() => assertUnicastMac("00:00:00:00:00:00"), /no MAC a NIC may have/);
  });
});
