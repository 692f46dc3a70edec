/** A guest's NICs as ports of a managed network (server/agent/networks/ports.ts): names, addresses, dnsmasq's host entries. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { chooseAddress, hostsFileOf, tapName, TAP_PREFIX, uniqueLabel } from "../../server/agent/networks/ports";
import { hostLabel } from "../../server/domain/names";
import { planIpv4 } from "../../server/domain/network-plan";

describe("network ports", () => {
  test("a tap's name fits the kernel's 15 characters, is the same for the same card, and differs by guest and position", () => {
    const name = tapName("guest0000001", 0);
    assert.ok(name.startsWith(TAP_PREFIX) && name.length <= 15, name);
    assert.equal(tapName("guest0000001", 0), name);
    assert.notEqual(tapName("guest0000001", 1), name);
    assert.notEqual(tapName("guest0000002", 0), name);
  });

  test("a guest's name becomes a DNS label; one with nothing usable is named by its id", () => {
    assert.equal(hostLabel("Web Server #1", "g1"), "web-server-1");
    assert.equal(hostLabel("--db--", "g1"), "db");
    assert.equal(hostLabel("ÜÜÜ", "g1"), "guest-g1");
    assert.equal(hostLabel("x".repeat(80), "g1").length, 63);
  });

  test("a label taken already gets a number", () => {
    assert.equal(uniqueLabel("db", new Set()), "db");
    assert.equal(uniqueLabel("db", new Set(["db"])), "db-2");
    assert.equal(uniqueLabel("db", new Set(["db", "db-2"])), "db-3");
    assert.equal(uniqueLabel("x".repeat(63), new Set(["x".repeat(63)])).length, 63);
  });

  const plan = planIpv4("10.5.0.0/29", "auto"); // hosts .1 (gateway) to .6; DHCP .4 to .6

  test("an address is the MAC's last one when free and in the range, else the range's first free", () => {
    assert.deepEqual(plan.dhcp, { start: "10.5.0.4", end: "10.5.0.6" });
    assert.equal(chooseAddress(plan, new Set(), null), "10.5.0.4");
    assert.equal(chooseAddress(plan, new Set(["10.5.0.4"]), null), "10.5.0.5");
    assert.equal(chooseAddress(plan, new Set(), "10.5.0.6"), "10.5.0.6");
    assert.equal(chooseAddress(plan, new Set(["10.5.0.6"]), "10.5.0.6"), "10.5.0.4", "a last address now someone else's is not reused");
    assert.equal(chooseAddress(plan, new Set(), "10.5.0.2"), "10.5.0.4", "a last address outside the range is not reused");
  });

  test("a full range is a conflict naming it; a network without DHCP assigns nothing", () => {
    assert.throws(() => chooseAddress(plan, new Set(["10.5.0.4", "10.5.0.5", "10.5.0.6"]), null), (err: Error & { code?: string }) => err.code === "conflict" && /10\.5\.0\.4 to 10\.5\.0\.6/.test(err.message));
    assert.throws(() => chooseAddress(planIpv4("10.5.0.0/29", null), new Set(), null), (err: Error & { code?: string }) => err.code === "invalid-input");
  });

  test("dnsmasq's host entries: reservations, then ports; a port without an address only names its MAC", () => {
    const text = hostsFileOf(
      [{ mac: "52:54:00:00:00:01", ip: "10.5.0.2", name: "fixed" }],
      [
        { tap: "ght1", mac: "52:54:00:00:00:02", ip: "10.5.0.4", guest: "g", name: "web" },
        { tap: "ght2", mac: "52:54:00:00:00:03", ip: null, guest: "g", name: "web-nic2" },
      ],
    );
    assert.equal(text, "52:54:00:00:00:01,10.5.0.2,fixed\n52:54:00:00:00:02,10.5.0.4,web\n52:54:00:00:00:03,web-nic2\n");
    assert.equal(hostsFileOf([], []), "");
  });
});
