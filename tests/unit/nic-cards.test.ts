/** A card's bandwidth limits (where they are allowed, their range, the policer's nftables words) and its MAC. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { policedRate } from "../../server/agent/networks/ports";
import { editHardwareInput, guestDefinitionSchema, guestSpecSchema, parseOrThrow } from "../../server/domain/validation";
import { testDefinition, testSpec } from "../helpers/specs";

const invalid = (text: RegExp) => (err: Error & { code?: string }) => err.code === "invalid-input" && text.test(err.message);

describe("a card's bandwidth limits", () => {
  test("a managed card may have either limit or both; the spec keeps them", () => {
    const spec = testSpec("guestbw00001", { nics: [{ mac: "52:54:00:00:00:01", model: "virtio", mode: "managed", network: "lab", bandwidth: { inMbit: 100, outMbit: 10 }, isolated: false, forwards: [] }] });
    assert.deepEqual(parseOrThrow(guestSpecSchema, spec, "The spec").nics[0], spec.nics[0]);
    const def = testDefinition("bw", [], { nics: [{ model: "virtio", network: "lab", bandwidth: { outMbit: 5 }, isolated: false, forwards: [] }] });
    assert.deepEqual(parseOrThrow(guestDefinitionSchema, def, "The guest").nics[0]!.bandwidth, { outMbit: 5 });
  });

  test("a user-mode card cannot be limited: refused, naming the card", () => {
    const def = testDefinition("bw", [], { nics: [{ model: "virtio", bandwidth: { inMbit: 5 }, isolated: false, forwards: [] }] });
    assert.throws(() => parseOrThrow(guestDefinitionSchema, def, "The guest"), invalid(/card 1 is on user-mode networking, which cannot be limited/));
  });

  test("a limit is a whole number of Mbit/s from 1 to 100000", () => {
    for (const bad of [0, -1, 1.5, 100_001]) {
      const def = testDefinition("bw", [], { nics: [{ model: "virtio", network: "lab", bandwidth: { inMbit: bad }, isolated: false, forwards: [] }] });
      assert.throws(() => parseOrThrow(guestDefinitionSchema, def, "The guest"), invalid(/1 to 100000/), String(bad));
    }
  });

  test("the policer: kbytes a second (an Mbit/s is 125 of them), a tenth of a second's burst, at least 64", () => {
    assert.equal(policedRate(1), "limit rate over 125 kbytes/second burst 64 kbytes");
    assert.equal(policedRate(1000), "limit rate over 125000 kbytes/second burst 12500 kbytes");
  });
});

describe("a card's MAC", () => {
  const withMac = (mac: string) => ({ mac, model: "virtio" as const, isolated: false, forwards: [] });
  test("a multicast or all-zero MAC is refused saying why; another shape, with the one QEMU takes", () => {
    const hardware = (mac: string) => ({ machine: "q35", firmware: "bios", vcpus: 1, sockets: 1, threads: 1, memoryMiB: 256, bootOrder: ["disk"], display: "std", serial: true, rtc: "utc", description: "", tags: [], disks: [], cdroms: [], nics: [withMac(mac)] });
    assert.throws(() => parseOrThrow(editHardwareInput, hardware("01:00:5e:00:00:01"), "The hardware"), invalid(/01:00:5e:00:00:01 is a multicast address/));
    assert.throws(() => parseOrThrow(editHardwareInput, hardware("00:00:00:00:00:00"), "The hardware"), invalid(/no MAC a NIC may have/));
    assert.throws(() => parseOrThrow(editHardwareInput, hardware("02:00:00:00:00:01"), "The hardware"), invalid(/looks like 52:54:00/));
    assert.equal(parseOrThrow(editHardwareInput, hardware("52:54:00:00:00:01"), "The hardware").nics[0]!.mac, "52:54:00:00:00:01");
  });
});
