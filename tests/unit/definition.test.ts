/** Import validation: a definition pasted or uploaded by a person, hostile or just wrong. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GuesthouseError } from "../../server/domain/errors";
import { parseDefinition, type GuestDefinition } from "../../server/domain/validation";

const GOOD: GuestDefinition = {
  guesthouse: 1,
  name: "web-01",
  machine: "q35",
  firmware: "uefi",
  vcpus: 4,
  sockets: 2,
  threads: 1,
  memoryMiB: 2048,
  bootOrder: ["disk", "cdrom", "network"],
  display: "virtio",
  serial: true,
  rtc: "utc",
  description: "the web server",
  tags: ["prod", "web"],
  disks: [{ sizeGiB: 20, format: "qcow2", bus: "virtio", cache: "none", readOnly: false }],
  cdroms: [{ iso: "debian-12.iso" }],
  nics: [{ model: "e1000", isolated: false, forwards: [{ protocol: "tcp", hostPort: 8080, guestPort: 80 }] }],
};

function refused(text: string, ...expected: RegExp[]): void {
  assert.throws(
    () => parseDefinition(text),
    (err: unknown) => {
      assert.ok(err instanceof GuesthouseError, String(err));
      assert.equal(err.code, "invalid-input");
      for (const pattern of expected) assert.match(err.message, pattern);
      return true;
    },
  );
}

describe("parseDefinition", () => {
  test("a good definition round-trips exactly", () => {
    assert.deepEqual(parseDefinition(JSON.stringify(GOOD)), GOOD);
  });

  test("bad JSON is refused and says so", () => {
    refused("{ name: web }", /not valid JSON/);
    refused("", /not valid JSON/);
    refused('{"guesthouse": 1,', /not valid JSON/);
  });

  test("something that is not a definition is refused", () => {
    refused("[]", /definition/i);
    refused("42", /definition/i);
    refused(JSON.stringify({ ...GOOD, guesthouse: 2 }), /guesthouse.*1/);
    const { guesthouse: _, ...noVersion } = GOOD;
    refused(JSON.stringify(noVersion), /guesthouse/);
  });

  test("unknown fields are refused by name, at every level", () => {
    refused(JSON.stringify({ ...GOOD, hostPath: "/etc" }), /hostPath/);
    refused(JSON.stringify({ ...GOOD, disks: [{ ...GOOD.disks[0], file: "/etc/shadow" }] }), /file/);
    refused(JSON.stringify({ ...GOOD, nics: [{ ...GOOD.nics[0], mac: "52:54:00:00:00:01" }] }), /mac/);
  });

  test("impossible values are refused with the field named", () => {
    refused(JSON.stringify({ ...GOOD, memoryMiB: 0 }), /memoryMiB/, /at least 16/);
    refused(JSON.stringify({ ...GOOD, vcpus: 1000 }), /vcpus/, /at most 64/);
    refused(JSON.stringify({ ...GOOD, vcpus: 3, sockets: 2 }), /multiple of sockets/);
    refused(JSON.stringify({ ...GOOD, disks: [{ ...GOOD.disks[0], sizeGiB: -1 }] }), /sizeGiB/);
    refused(JSON.stringify({ ...GOOD, disks: [{ ...GOOD.disks[0], sizeGiB: "20" }] }), /sizeGiB/);
    refused(JSON.stringify({ ...GOOD, name: "../etc" }), /name/, /letters, digits/);
    refused(JSON.stringify({ ...GOOD, cdroms: [{ iso: "/etc/passwd.iso" }] }), /iso/);
    refused(JSON.stringify({ ...GOOD, nics: [{ model: "e1000", forwards: [{ protocol: "tcp", hostPort: 22, guestPort: 22 }] }] }), /hostPort/, /at least 1024/);
    const ideDisk = { ...GOOD.disks[0]!, bus: "ide" as const };
    refused(JSON.stringify({ ...GOOD, machine: "pc", disks: [ideDisk, ideDisk], cdroms: Array(3).fill({ iso: "a.iso" }) }), /4 IDE slots/);
    refused(JSON.stringify({ ...GOOD, cdroms: Array(5).fill({ iso: "a.iso" }) }), /at most 4 CD-ROMs/);
    refused(JSON.stringify({ ...GOOD, bootOrder: ["disk", "disk"] }), /boot/i);
    refused(JSON.stringify({ ...GOOD, firmware: "coreboot" }), /firmware/);
  });

  test("every problem is named, not only the first", () => {
    refused(JSON.stringify({ ...GOOD, memoryMiB: 0, vcpus: 0, name: "" }), /memoryMiB/, /vcpus/, /name/);
  });

  test("an oversized definition is refused before it is parsed", () => {
    refused(" ".repeat(300 * 1024), /256 KiB/);
  });
});
