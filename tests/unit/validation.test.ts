/**
 * Input validation at the boundaries (server/domain/validation.ts). The guest state
 * machine's properties are in guest-states.test.ts.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  createGuestInput,
  editHardwareInput,
  GUEST_NAME_RULE,
  guestName,
  guestSpecSchema,
  LIMITS,
  parseOrThrow,
} from "../../server/domain/validation";
import { GuesthouseError } from "../../server/domain/errors";
import type { DiskSpec, GuestSpec, NicSpec } from "../../server/domain/types";

function invalidInput(...mustMention: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof GuesthouseError, `expected a GuesthouseError, got ${String(err)}`);
    assert.equal(err.code, "invalid-input");
    for (const m of mustMention) assert.ok(err.message.includes(m), `message lacks ${JSON.stringify(m)}: ${err.message}`);
    return true;
  };
}

describe("guest names", () => {
  const GOOD = ["a", "A", "0", "web1", "web-1", "web_1", "web.1", "Web.Server-01_x", "a".repeat(63), "1-2-3", "a..b", "a-"];
  for (const name of GOOD) {
    test(`accepts ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…(${name.length})` : name)}`, () => {
      assert.equal(guestName.parse(name), name);
    });
  }

  test("surrounding whitespace is trimmed away, not kept", () => {
    assert.equal(guestName.parse("  web1 "), "web1");
    assert.equal(guestName.parse("web1\n"), "web1");
  });

  const BAD: [string, string][] = [
    ["empty", ""],
    ["only spaces", "   "],
    ["leading dash", "-web"],
    ["leading dot", ".web"],
    ["leading underscore", "_web"],
    ["64 characters", "a".repeat(64)],
    ["a space inside", "web 1"],
    ["a tab inside", "web\t1"],
    ["a newline inside", "web\n1"],
    ["path traversal", "../x"],
    ["a slash", "a/b"],
    ["a backslash", "a\\b"],
    ["a comma", "a,b"],
    ["an equals sign", "a=b"],
    ["a colon", "a:b"],
    ["unicode letters", "gäst"],
    ["unicode lookalike", "wеb1"], // Cyrillic е
    ["emoji", "vm🙂"],
    ["a NUL byte", "a\u0000b"],
    ["command substitution", "$(reboot)"],
    ["backticks", "`id`"],
    ["a semicolon", "a;b"],
    ["a pipe", "a|b"],
    ["an ampersand", "a&b"],
    ["redirection", "a>b"],
    ["quotes", `a'b"c`],
    ["a glob", "a*"],
    ["a dollar", "a$b"],
  ];
  for (const [what, name] of BAD) {
    test(`rejects ${what} with a message naming the rule`, () => {
      const result = guestName.safeParse(name);
      assert.equal(result.success, false, `accepted ${JSON.stringify(name)}`);
      assert.ok(
        result.error?.issues.some((i) => i.message.includes(GUEST_NAME_RULE)),
        JSON.stringify(result.error?.issues),
      );
      // And through the boundary helper: invalid-input, naming the field and the rule.
      assert.throws(() => parseOrThrow(createGuestInput, { ...FORM, name }, "The new guest"), invalidInput("name", GUEST_NAME_RULE));
    });
  }

  test("the rule says what is allowed", () => {
    for (const word of ["63", "letters", "digits", "'.'", "'_'", "'-'"]) assert.ok(GUEST_NAME_RULE.includes(word), word);
  });

  test("a non-string name is rejected", () => {
    for (const name of [42, null, undefined, ["web1"], { name: "web1" }]) {
      assert.equal(guestName.safeParse(name).success, false, JSON.stringify(name));
    }
  });
});

/** A valid create-guest form, as FormData would give it (strings). */
const FORM = {
  name: "web1",
  vcpus: "2",
  memoryMiB: "512",
  diskGiB: "10",
  diskBus: "virtio",
  iso: "debian-12.iso",
  network: "user",
  boot: "cdrom",
} as const;

describe("createGuestInput", () => {
  test("a valid form parses, with numbers coerced", () => {
    assert.deepEqual(parseOrThrow(createGuestInput, FORM), {
      name: "web1",
      vcpus: 2,
      memoryMiB: 512,
      diskGiB: 10,
      diskBus: "virtio",
      iso: "debian-12.iso",
      network: "user",
      boot: "cdrom",
    });
  });

  test("the limits themselves are accepted", () => {
    const low = parseOrThrow(createGuestInput, { ...FORM, vcpus: "1", memoryMiB: String(LIMITS.memoryMiB.min), diskGiB: "1" });
    assert.equal(low.vcpus, 1);
    assert.equal(low.memoryMiB, 16);
    const high = parseOrThrow(createGuestInput, {
      ...FORM,
      vcpus: String(LIMITS.vcpus.max),
      memoryMiB: String(LIMITS.memoryMiB.max),
      diskGiB: String(LIMITS.diskGiB.max),
    });
    assert.equal(high.vcpus, 64);
    assert.equal(high.memoryMiB, 1024 * 1024);
    assert.equal(high.diskGiB, 64 * 1024);
  });

  test("no disk (the number 0) and no CD-ROM (empty) are accepted", () => {
    const input = parseOrThrow(createGuestInput, { ...FORM, diskGiB: 0, iso: "", boot: "disk" });
    assert.equal(input.diskGiB, 0);
    assert.equal(input.iso, "");
  });

  // Form data always arrives as text: "0" must mean "no disk" (it once fell through to
  // the disk-size rule and was refused).
  test('no disk as the form sends it (the string "0") is accepted as 0', () => {
    const input = parseOrThrow(createGuestInput, { ...FORM, diskGiB: "0" });
    assert.equal(input.diskGiB, 0);
  });

  const BAD: [string, Record<string, unknown>, string[]][] = [
    ["memory 0", { memoryMiB: "0" }, ["memoryMiB", "Memory", "at least 16"]],
    ["memory 10^9", { memoryMiB: "1000000000" }, ["memoryMiB", "Memory", "at most"]],
    ["memory 15", { memoryMiB: "15" }, ["memoryMiB", "at least 16"]],
    ["memory fractional", { memoryMiB: "512.5" }, ["memoryMiB", "whole number"]],
    ["memory not a number", { memoryMiB: "lots" }, ["memoryMiB", "Memory must be a whole number"]],
    ["memory Infinity", { memoryMiB: "Infinity" }, ["memoryMiB"]],
    ["vcpus 0", { vcpus: "0" }, ["vcpus", "vCPUs", "at least 1"]],
    ["vcpus 65", { vcpus: "65" }, ["vcpus", "at most 64"]],
    ["vcpus negative", { vcpus: "-2" }, ["vcpus", "at least 1"]],
    ["vcpus not a number", { vcpus: "two" }, ["vcpus", "vCPUs must be a whole number"]],
    ["vcpus NaN", { vcpus: "NaN" }, ["vcpus"]],
    ["disk size negative", { diskGiB: "-5" }, ["diskGiB", "Disk size", "at least 0"]],
    ["disk size negative number", { diskGiB: -5 }, ["diskGiB"]],
    ["disk size too large", { diskGiB: String(64 * 1024 + 1) }, ["diskGiB", "at most"]],
    ["disk size not a number", { diskGiB: "big" }, ["diskGiB"]],
    ["disk size fractional", { diskGiB: "1.5" }, ["diskGiB"]],
    ["unknown disk bus", { diskBus: "sata" }, ["diskBus"]],
    ["vcpus in hex", { vcpus: "0x10" }, ["vcpus", "whole number"]],
    ["memory in hex", { memoryMiB: "0x200" }, ["memoryMiB", "whole number"]],
    ["memory in exponent notation", { memoryMiB: "5e2" }, ["memoryMiB", "whole number"]],
    ["disk size in hex", { diskGiB: "0xA" }, ["diskGiB", "whole number"]],
    ["vcpus as a boolean", { vcpus: true }, ["vcpus"]],
    ["vcpus null", { vcpus: null }, ["vcpus"]],
    ["vcpus empty", { vcpus: "" }, ["vcpus"]],
    ["malformed network name", { network: "Not a/name" }, ["network"]],
    ["unknown boot device", { boot: "floppy" }, ["boot"]],
    ["ISO path traversal", { iso: "../etc/passwd.iso" }, ["iso", "ISO"]],
    ["ISO not an .iso", { iso: "disk.qcow2" }, ["iso"]],
  ];
  for (const [what, patch, mention] of BAD) {
    test(`rejects ${what} with invalid-input naming the field`, () => {
      assert.throws(() => parseOrThrow(createGuestInput, { ...FORM, ...patch }, "The new guest"), invalidInput("The new guest", ...mention));
    });
  }

  test("every problem is named, not just the first", () => {
    assert.throws(
      () => parseOrThrow(createGuestInput, { ...FORM, vcpus: "0", memoryMiB: "0", name: "-x" }),
      invalidInput("vcpus", "memoryMiB", "name"),
    );
  });

  test("unknown fields are rejected", () => {
    assert.throws(() => parseOrThrow(createGuestInput, { ...FORM, hostPath: "/etc" }), invalidInput("hostPath"));
  });

  test("every disk bus is accepted, SCSI included", () => {
    for (const diskBus of ["virtio", "scsi", "ide"]) {
      assert.equal(parseOrThrow(createGuestInput, { ...FORM, diskBus }).diskBus, diskBus);
    }
  });

  test("missing fields are rejected", () => {
    const { vcpus: _vcpus, ...withoutVcpus } = FORM;
    assert.throws(() => parseOrThrow(createGuestInput, withoutVcpus), invalidInput("vcpus"));
  });
});

const SPEC: GuestSpec = {
  id: "abcd1234",
  name: "web1",
  machine: "q35",
  firmware: "bios",
  vcpus: 2,
  sockets: 1,
  threads: 1,
  memoryMiB: 512,
  disks: [{ volume: "vol00001", pool: "default", file: "vol00001.qcow2", format: "qcow2", backing: [], encrypted: false, bus: "virtio", cache: "none", readOnly: false }],
  cdroms: [{ iso: "debian-12.4.0-amd64-netinst.iso" }],
  nics: [{ mac: "52:54:00:12:34:56", model: "virtio", mode: "user", isolated: false, forwards: [{ protocol: "tcp", hostPort: 2222, guestPort: 22 }] }],
  bootOrder: ["cdrom", "disk"],
  display: "std",
  serial: true,
  rtc: "utc",
};

/** Every option away from its default, all valid together. */
const FULL_SPEC: GuestSpec = {
  id: "abcd1234",
  name: "build-box",
  machine: "pc",
  firmware: "uefi",
  vcpus: 8,
  sockets: 2,
  threads: 2,
  memoryMiB: 4096,
  disks: [
    { volume: "vol00001", pool: "default", file: "vol00001.qcow2", format: "qcow2", backing: [], encrypted: false, bus: "scsi", cache: "writeback", readOnly: true },
    { volume: "vol00002", pool: "default", file: "vol00002.raw", format: "raw", backing: [], encrypted: false, bus: "ide", cache: "unsafe", readOnly: false },
    { volume: "vol00003", pool: "default", file: "vol00003.qcow2", format: "qcow2", backing: [], encrypted: false, bus: "virtio", cache: "directsync", readOnly: true },
  ],
  cdroms: [{ iso: "a.iso" }, { iso: "b.iso" }],
  nics: [
    {
      mac: "52:54:00:00:00:01",
      model: "e1000",
      mode: "user",
      isolated: true,
      forwards: [
        { protocol: "tcp", hostPort: 8080, guestPort: 80 },
        { protocol: "udp", hostPort: 8080, guestPort: 80 },
      ],
    },
    { mac: "52:54:00:00:00:02", model: "rtl8139", mode: "user", isolated: false, forwards: [{ protocol: "tcp", hostPort: 65535, guestPort: 1 }] },
  ],
  bootOrder: ["network", "disk", "cdrom"],
  bootMenu: true,
  display: "qxl",
  serial: false,
  rtc: "localtime",
};

const vdisk = (volume: string, patch: Partial<DiskSpec> = {}): DiskSpec => ({
  volume,
  pool: "default",
  file: `${volume}.qcow2`,
  format: "qcow2",
  backing: [],
  encrypted: false,
  bus: "virtio",
  cache: "none",
  readOnly: false,
  ...patch,
});
const idedisks = (n: number): DiskSpec[] => Array.from({ length: n }, (_, i) => vdisk(`vol0000${i}`, { bus: "ide" }));
const cds = (n: number) => Array.from({ length: n }, (_, i) => ({ iso: `c${i}.iso` }));
const unic = (mac: string, forwards: NicSpec["forwards"] = []): NicSpec => ({ mac, model: "virtio", mode: "user", isolated: false, forwards });

describe("guestSpecSchema", () => {
  test("a valid spec parses unchanged", () => {
    assert.deepEqual(parseOrThrow(guestSpecSchema, SPEC), SPEC);
  });

  test("a spec using every new option parses unchanged", () => {
    assert.deepEqual(parseOrThrow(guestSpecSchema, FULL_SPEC), FULL_SPEC);
  });

  test("every value of every choice is accepted", () => {
    const ok = (patch: Record<string, unknown>) => assert.doesNotThrow(() => parseOrThrow(guestSpecSchema, { ...SPEC, ...patch }), JSON.stringify(patch));
    for (const machine of ["q35", "pc"]) ok({ machine });
    for (const firmware of ["bios", "uefi"]) ok({ firmware });
    for (const display of ["std", "virtio", "qxl"]) ok({ display });
    for (const rtc of ["utc", "localtime"]) ok({ rtc });
    for (const serial of [true, false]) ok({ serial });
    for (const bootMenu of [true, false, undefined]) ok({ bootMenu });
    for (const bus of ["virtio", "scsi", "ide"]) ok({ disks: [vdisk("vol00001", { bus } as Partial<DiskSpec>)] });
    for (const cache of ["none", "writeback", "writethrough", "directsync", "unsafe"]) ok({ disks: [vdisk("vol00001", { cache } as Partial<DiskSpec>)] });
    for (const model of ["virtio", "e1000", "rtl8139"]) ok({ nics: [{ ...unic("52:54:00:00:00:01"), model }] });
    for (const protocol of ["tcp", "udp"]) ok({ nics: [unic("52:54:00:00:00:01", [{ protocol, hostPort: 1024, guestPort: 65535 } as never])] });
    for (const bootOrder of [[], ["disk"], ["network"], ["cdrom", "disk"], ["network", "cdrom", "disk"], ["disk", "network", "cdrom"]]) ok({ bootOrder });
  });

  const UNKNOWN: [string, unknown, string][] = [
    ["top level", { ...SPEC, qemuArgs: ["-monitor", "tcp::4444"] }, '"qemuArgs"'],
    ["the old boot field", { ...SPEC, boot: "disk" }, '"boot"'],
    ["in a disk", { ...SPEC, disks: [{ ...SPEC.disks[0], path: "/etc/shadow" }] }, 'disks.0: Unrecognized key: "path"'],
    ["in a cdrom", { ...SPEC, cdroms: [{ iso: "a.iso", path: "/etc/passwd" }] }, 'cdroms.0: Unrecognized key: "path"'],
    ["in a nic", { ...SPEC, nics: [{ ...SPEC.nics[0], script: "/tmp/x.sh" }] }, 'nics.0: Unrecognized key: "script"'],
    [
      "in a port forward",
      { ...SPEC, nics: [unic("52:54:00:00:00:01", [{ protocol: "tcp", hostPort: 2222, guestPort: 22, hostAddr: "0.0.0.0" } as never])] },
      'nics.0.forwards.0: Unrecognized key: "hostAddr"',
    ],
  ];
  for (const [where, value, mention] of UNKNOWN) {
    test(`rejects an unknown field ${where}`, () => {
      assert.throws(() => parseOrThrow(guestSpecSchema, value), invalidInput("Unrecognized key", mention));
    });
  }

  for (const field of ["machine", "firmware", "sockets", "threads", "bootOrder", "display", "serial", "rtc"] as const) {
    test(`rejects a spec without ${field}`, () => {
      const { [field]: _gone, ...without } = SPEC;
      assert.throws(() => parseOrThrow(guestSpecSchema, without), invalidInput(field));
    });
  }
  for (const field of ["cache", "readOnly", "bus"] as const) {
    test(`rejects a disk without ${field}`, () => {
      const { [field]: _gone, ...disk } = SPEC.disks[0]!;
      assert.throws(() => parseOrThrow(guestSpecSchema, { ...SPEC, disks: [disk] }), invalidInput(`disks.0.${field}`));
    });
  }
  for (const field of ["forwards", "model"] as const) {
    test(`rejects a NIC without ${field}`, () => {
      const { [field]: _gone, ...n } = SPEC.nics[0]!;
      assert.throws(() => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [n] }), invalidInput(`nics.0.${field}`));
    });
  }

  const BAD_ISOS = [
    "../etc/passwd.iso",
    "/abs.iso",
    "dir/a.iso",
    "..\\a.iso",
    ".hidden.iso",
    ".iso",
    "a.iso/",
    "a.iso\n",
    "a b.iso",
    "a,b.iso",
    "a.ISO",
    "a.img",
    "-a.iso",
    "",
  ];
  for (const iso of BAD_ISOS) {
    test(`rejects the ISO name ${JSON.stringify(iso)}`, () => {
      assert.throws(
        () => parseOrThrow(guestSpecSchema, { ...SPEC, cdroms: [{ iso }] }),
        invalidInput("cdroms.0.iso", "plain file name"),
      );
    });
  }

  const BAD_FIELDS: [string, Partial<Record<keyof GuestSpec, unknown>>, string][] = [
    ["an id with a slash", { id: "../abcd123" }, "id"],
    ["an uppercase id", { id: "ABCD1234" }, "id"],
    ["a short id", { id: "abc" }, "id"],
    ["a volume with a path", { disks: [vdisk("../../etc/x")] }, "disks.0.volume"],
    ["an unknown disk format", { disks: [{ ...vdisk("vol00001"), format: "qed" }] }, "disks.0.format"],
    ["an unknown disk bus", { disks: [{ ...vdisk("vol00001"), bus: "sata" }] }, "disks.0.bus"],
    ["an unknown cache mode", { disks: [{ ...vdisk("vol00001"), cache: "default" }] }, "disks.0.cache"],
    ["an uppercase MAC", { nics: [unic("52:54:00:AB:CD:EF")] }, "nics.0.mac"],
    ["a MAC outside QEMU's prefix", { nics: [unic("00:11:22:33:44:55")] }, "nics.0.mac"],
    ["a tap NIC", { nics: [{ ...unic("52:54:00:12:34:56"), mode: "tap" }] }, "nics.0.mode"],
    ["an unknown NIC model", { nics: [{ ...unic("52:54:00:12:34:56"), model: "ne2k_pci" }] }, "nics.0.model"],
    ["an unknown forward protocol", { nics: [unic("52:54:00:12:34:56", [{ protocol: "sctp", hostPort: 2222, guestPort: 22 } as never])] }, "nics.0.forwards.0.protocol"],
    ["9 disks", { disks: Array.from({ length: 9 }, (_, i) => vdisk(`vol0000${i}`)) }, "disks"],
    ["5 cdroms", { cdroms: cds(5) }, "cdroms"],
    ["9 NICs", { nics: Array.from({ length: 9 }, (_, i) => unic(`52:54:00:00:00:0${i}`)) }, "nics"],
    ["17 forwards on one NIC", { nics: [unic("52:54:00:00:00:01", Array.from({ length: 17 }, (_, i) => ({ protocol: "tcp" as const, hostPort: 2000 + i, guestPort: 22 })))] }, "nics.0.forwards"],
    ["a bad name", { name: "a,b" }, "name"],
    ["zero memory", { memoryMiB: 0 }, "memoryMiB"],
    ["an unknown machine", { machine: "isapc" }, "machine"],
    ["an unknown firmware", { firmware: "coreboot" }, "firmware"],
    ["an unknown display", { display: "cirrus" }, "display"],
    ["an unknown clock base", { rtc: "gmt" }, "rtc"],
    ["0 sockets", { sockets: 0 }, "sockets"],
    ["0 threads", { threads: 0 }, "threads"],
    ["9 threads per core", { vcpus: 9, threads: 9 }, "threads"],
    ["an unknown boot kind", { bootOrder: ["floppy"] }, "bootOrder.0"],
    ["four boot kinds", { bootOrder: ["disk", "cdrom", "network", "disk"] }, "bootOrder"],
  ];
  for (const [what, patch, field] of BAD_FIELDS) {
    test(`rejects ${what}`, () => {
      assert.throws(() => parseOrThrow(guestSpecSchema, { ...SPEC, ...patch }), invalidInput(field));
    });
  }
});

describe("guestSpecSchema: checks across fields", () => {
  const TOPOLOGY_BAD: [number, number, number][] = [
    [6, 4, 1],
    [3, 2, 1],
    [2, 1, 4],
    [4, 8, 1],
    [8, 3, 2],
  ];
  for (const [vcpus, sockets, threads] of TOPOLOGY_BAD) {
    test(`rejects ${vcpus} vCPUs in ${sockets} socket(s) of ${threads} thread(s): it does not divide`, () => {
      assert.throws(
        () => parseOrThrow(guestSpecSchema, { ...SPEC, vcpus, sockets, threads }),
        invalidInput("vcpus", `${vcpus} vCPUs cannot be split`, "multiple of sockets × threads"),
      );
    });
  }
  const TOPOLOGY_GOOD: [number, number, number][] = [
    [1, 1, 1],
    [8, 2, 2],
    [6, 3, 1],
    [64, 4, 8],
    [12, 12, 1],
  ];
  for (const [vcpus, sockets, threads] of TOPOLOGY_GOOD) {
    test(`accepts ${vcpus} vCPUs in ${sockets} socket(s) of ${threads} thread(s)`, () => {
      assert.equal(parseOrThrow(guestSpecSchema, { ...SPEC, vcpus, sockets, threads }).vcpus, vcpus);
    });
  }

  const IDE_BAD: [string, Partial<GuestSpec>, string, string][] = [
    ["pc: 5 IDE disks", { machine: "pc", disks: idedisks(5), cdroms: [] }, "A pc guest has 4 IDE slots", "not 5"],
    ["pc: 1 IDE disk + 4 cdroms", { machine: "pc", disks: idedisks(1), cdroms: cds(4) }, "A pc guest has 4 IDE slots", "not 5"],
    ["pc: 2 IDE disks + 4 cdroms", { machine: "pc", disks: idedisks(2), cdroms: cds(4) }, "A pc guest has 4 IDE slots", "not 6"],
    ["q35: 7 IDE disks", { machine: "q35", disks: idedisks(7), cdroms: [] }, "A q35 guest has 6 IDE slots", "not 7"],
    ["q35: 3 IDE disks + 4 cdroms", { machine: "q35", disks: idedisks(3), cdroms: cds(4) }, "A q35 guest has 6 IDE slots", "not 7"],
    ["q35: 8 IDE disks + 4 cdroms", { machine: "q35", disks: idedisks(8), cdroms: cds(4) }, "A q35 guest has 6 IDE slots", "not 12"],
  ];
  for (const [what, patch, limit, count] of IDE_BAD) {
    test(`rejects too many IDE devices for the machine, naming its limit: ${what}`, () => {
      assert.throws(() => parseOrThrow(guestSpecSchema, { ...SPEC, ...patch }), invalidInput("disks", limit, count));
    });
  }

  test("the IDE limit is the machine's: 5 IDE devices are fine on q35, too many on pc", () => {
    const five = { ...SPEC, disks: idedisks(1), cdroms: cds(4) };
    assert.doesNotThrow(() => parseOrThrow(guestSpecSchema, { ...five, machine: "q35" }));
    assert.throws(() => parseOrThrow(guestSpecSchema, { ...five, machine: "pc" }), invalidInput("pc", "4 IDE slots"));
  });

  test("exactly the limit is accepted: 4 on pc, 6 on q35", () => {
    assert.doesNotThrow(() => parseOrThrow(guestSpecSchema, { ...SPEC, machine: "pc", disks: idedisks(2), cdroms: cds(2) }));
    assert.doesNotThrow(() => parseOrThrow(guestSpecSchema, { ...SPEC, machine: "q35", disks: idedisks(2), cdroms: cds(4) }));
  });

  test("virtio and SCSI disks do not use IDE slots", () => {
    const disks = Array.from({ length: 8 }, (_, i) => vdisk(`vol0000${i}`, { bus: i % 2 ? "scsi" : "virtio" }));
    assert.doesNotThrow(() => parseOrThrow(guestSpecSchema, { ...SPEC, machine: "pc", disks, cdroms: cds(4) }));
  });

  test("rejects two NICs with the same MAC", () => {
    assert.throws(
      () => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [unic("52:54:00:00:00:01"), unic("52:54:00:00:00:02"), unic("52:54:00:00:00:01")] }),
      invalidInput("nics", "same MAC address"),
    );
  });

  test("different MACs are fine", () => {
    assert.doesNotThrow(() => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [unic("52:54:00:00:00:01"), unic("52:54:00:00:00:02")] }));
  });

  const tcp = (hostPort: number, guestPort = 22) => ({ protocol: "tcp" as const, hostPort, guestPort });
  const udp = (hostPort: number, guestPort = 53) => ({ protocol: "udp" as const, hostPort, guestPort });

  const DUP_PORTS: [string, NicSpec[]][] = [
    ["twice on one NIC", [unic("52:54:00:00:00:01", [tcp(2222, 22), tcp(2222, 80)])]],
    ["on two NICs", [unic("52:54:00:00:00:01", [tcp(8080, 80)]), unic("52:54:00:00:00:02", [tcp(8080, 8080)])]],
    ["udp twice", [unic("52:54:00:00:00:01", [udp(5353)]), unic("52:54:00:00:00:02", [udp(5353, 5353)])]],
  ];
  for (const [what, nics] of DUP_PORTS) {
    test(`rejects a host port forwarded twice with the same protocol: ${what}`, () => {
      assert.throws(() => parseOrThrow(guestSpecSchema, { ...SPEC, nics }), invalidInput("nics", "forwarded twice"));
    });
  }

  test("the same host port over tcp and over udp is fine", () => {
    assert.doesNotThrow(() => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [unic("52:54:00:00:00:01", [tcp(5353), udp(5353)])] }));
  });

  for (const hostPort of [0, 1, 22, 80, 443, 1023]) {
    test(`rejects the privileged host port ${hostPort}`, () => {
      assert.throws(
        () => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [unic("52:54:00:00:00:01", [tcp(hostPort)])] }),
        invalidInput("nics.0.forwards.0.hostPort", "at least 1024"),
      );
    });
  }

  test("host ports 1024 and 65535 are accepted, 65536 is not; guest ports 1..65535", () => {
    assert.doesNotThrow(() => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [unic("52:54:00:00:00:01", [tcp(1024, 1), tcp(65535, 65535)])] }));
    assert.throws(
      () => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [unic("52:54:00:00:00:01", [tcp(65536)])] }),
      invalidInput("nics.0.forwards.0.hostPort", "at most 65535"),
    );
    assert.throws(
      () => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [unic("52:54:00:00:00:01", [tcp(2222, 0)])] }),
      invalidInput("nics.0.forwards.0.guestPort", "at least 1"),
    );
    assert.throws(
      () => parseOrThrow(guestSpecSchema, { ...SPEC, nics: [unic("52:54:00:00:00:01", [tcp(2222, 65536)])] }),
      invalidInput("nics.0.forwards.0.guestPort", "at most 65535"),
    );
  });

  const DUP_BOOT: string[][] = [
    ["disk", "disk"],
    ["cdrom", "cdrom"],
    ["network", "cdrom", "network"],
  ];
  for (const bootOrder of DUP_BOOT) {
    test(`rejects a boot kind named twice: ${bootOrder.join(",")}`, () => {
      assert.throws(() => parseOrThrow(guestSpecSchema, { ...SPEC, bootOrder }), invalidInput("bootOrder", "at most once"));
    });
  }

  // QEMU refuses a read-only drive behind ide-hd ("Block node is read-only", checked
  // with QEMU 7.2 for q35 and pc): the schema refuses it up front (virtio and SCSI
  // disks may be read-only).
  test("rejects a read-only IDE disk: QEMU cannot start it", () => {
    for (const machine of ["q35", "pc"] as const) {
      assert.throws(
        () => parseOrThrow(guestSpecSchema, { ...SPEC, machine, disks: [vdisk("vol00001", { bus: "ide", readOnly: true })] }),
        invalidInput("disks"),
        machine,
      );
    }
  });

  test("read-only virtio and SCSI disks are accepted", () => {
    const disks = [vdisk("vol00001", { readOnly: true }), vdisk("vol00002", { bus: "scsi", readOnly: true })];
    assert.deepEqual(parseOrThrow(guestSpecSchema, { ...SPEC, disks }).disks, disks);
  });
});

describe("hostile JSON-ish values are refused, never coerced", () => {
  const HOSTILE: [string, Record<string, unknown>, string][] = [
    ["serial as the string \"true\"", { serial: "true" }, "serial"],
    ["serial as the string \"false\"", { serial: "false" }, "serial"],
    ["serial as 1", { serial: 1 }, "serial"],
    ["serial as 0", { serial: 0 }, "serial"],
    ["serial null", { serial: null }, "serial"],
    ["bootMenu as \"yes\"", { bootMenu: "yes" }, "bootMenu"],
    ["bootMenu as 1", { bootMenu: 1 }, "bootMenu"],
    ["readOnly as \"false\"", { disks: [{ ...vdisk("vol00001"), readOnly: "false" }] }, "disks.0.readOnly"],
    ["readOnly as 0", { disks: [{ ...vdisk("vol00001"), readOnly: 0 }] }, "disks.0.readOnly"],
    ["vcpus as \"0x10\"", { vcpus: "0x10" }, "vcpus"],
    ["vcpus as \"16\"", { vcpus: "16" }, "vcpus"],
    ["vcpus as 1.5", { vcpus: 1.5 }, "vcpus"],
    ["vcpus NaN", { vcpus: Number.NaN }, "vcpus"],
    ["vcpus Infinity", { vcpus: Number.POSITIVE_INFINITY }, "vcpus"],
    ["vcpus true", { vcpus: true }, "vcpus"],
    ["memory as \"512\"", { memoryMiB: "512" }, "memoryMiB"],
    ["memory as \"0x200\"", { memoryMiB: "0x200" }, "memoryMiB"],
    ["sockets as \"1\"", { sockets: "1" }, "sockets"],
    ["threads true", { threads: true }, "threads"],
    ["host port as \"2222\"", { nics: [unic("52:54:00:00:00:01", [{ protocol: "tcp", hostPort: "2222", guestPort: 22 } as never])] }, "nics.0.forwards.0.hostPort"],
    ["host port as \"0x8AE\"", { nics: [unic("52:54:00:00:00:01", [{ protocol: "tcp", hostPort: "0x8AE", guestPort: 22 } as never])] }, "nics.0.forwards.0.hostPort"],
    ["guest port 22.5", { nics: [unic("52:54:00:00:00:01", [{ protocol: "tcp", hostPort: 2222, guestPort: 22.5 }])] }, "nics.0.forwards.0.guestPort"],
    ["bootOrder as a string", { bootOrder: "disk" }, "bootOrder"],
    ["bootOrder as a comma list", { bootOrder: "disk,cdrom" }, "bootOrder"],
    ["disks as an object", { disks: { 0: vdisk("vol00001") } }, "disks"],
    ["forwards null", { nics: [{ ...unic("52:54:00:00:00:01"), forwards: null }] }, "nics.0.forwards"],
    ["machine as an array", { machine: ["q35"] }, "machine"],
    ["machine with different case", { machine: "Q35" }, "machine"],
  ];
  for (const [what, patch, field] of HOSTILE) {
    test(`guestSpecSchema refuses ${what}`, () => {
      assert.throws(() => parseOrThrow(guestSpecSchema, { ...SPEC, ...patch }), invalidInput(field));
    });
  }
});

/** A valid hardware definition as the edit form sends it (JSON). */
const HW = {
  machine: "q35",
  firmware: "uefi",
  vcpus: 4,
  sockets: 1,
  threads: 2,
  memoryMiB: 2048,
  bootOrder: ["disk", "cdrom"],
  display: "virtio",
  serial: true,
  rtc: "utc",
  description: "Build box for the nightly jobs.",
  tags: ["ci", "linux-6.1", "a".repeat(32)],
  disks: [
    { id: "cm3disk0000000001", bus: "scsi", cache: "writeback", readOnly: false },
    { id: "cm3disk0000000002", bus: "virtio", cache: "none", readOnly: true },
  ],
  cdroms: [{ iso: "debian-12.iso" }],
  nics: [
    { mac: "52:54:00:12:34:56", model: "virtio", isolated: false, forwards: [{ protocol: "tcp", hostPort: 2222, guestPort: 22 }] },
    { model: "e1000", isolated: true, forwards: [] },
  ],
};

describe("editHardwareInput", () => {
  test("a good definition parses unchanged", () => {
    assert.deepEqual(parseOrThrow(editHardwareInput, HW, "The hardware"), HW);
  });

  test("a card without \"isolated\" (an older page or definition) is not isolated", () => {
    const parsed = parseOrThrow(editHardwareInput, { ...HW, nics: [{ model: "e1000", forwards: [] }] }, "The hardware");
    assert.equal(parsed.nics[0]!.isolated, false);
  });

  test("tags are trimmed", () => {
    assert.deepEqual(parseOrThrow(editHardwareInput, { ...HW, tags: ["  ci ", "web\n"] }).tags, ["ci", "web"]);
  });

  test("a new NIC may leave its MAC out; no NICs and no tags are fine too", () => {
    assert.doesNotThrow(() => parseOrThrow(editHardwareInput, { ...HW, nics: [{ model: "rtl8139", forwards: [] }] }));
    assert.doesNotThrow(() => parseOrThrow(editHardwareInput, { ...HW, nics: [], tags: [], description: "" }));
  });

  const BAD_TAGS: [string, string][] = [
    ["a space inside", "bad tag"],
    ["33 characters", "a".repeat(33)],
    ["empty", ""],
    ["a leading dash", "-x"],
    ["a slash", "a/b"],
    ["a comma", "a,b"],
    ["unicode", "täg"],
    ["markup", "<b>"],
  ];
  for (const [what, bad] of BAD_TAGS) {
    test(`rejects a tag with ${what}`, () => {
      assert.throws(
        () => parseOrThrow(editHardwareInput, { ...HW, tags: ["ok", bad] }, "The hardware"),
        invalidInput("The hardware", "tags.1", "A tag is 1 to 32"),
      );
    });
  }

  test("16 tags are fine, 17 are not", () => {
    const tags = (n: number) => Array.from({ length: n }, (_, i) => `t${i}`);
    assert.doesNotThrow(() => parseOrThrow(editHardwareInput, { ...HW, tags: tags(16) }));
    assert.throws(() => parseOrThrow(editHardwareInput, { ...HW, tags: tags(17) }), invalidInput("tags"));
  });

  test("a 2,000-character description is fine, 2,001 is not", () => {
    assert.doesNotThrow(() => parseOrThrow(editHardwareInput, { ...HW, description: "x".repeat(2000) }));
    assert.throws(
      () => parseOrThrow(editHardwareInput, { ...HW, description: "x".repeat(2001) }),
      invalidInput("description", "at most 2,000 characters"),
    );
  });

  test("8 NICs are fine, 9 are not", () => {
    const nics = (n: number) => Array.from({ length: n }, () => ({ model: "virtio", forwards: [] }));
    assert.doesNotThrow(() => parseOrThrow(editHardwareInput, { ...HW, nics: nics(8) }));
    assert.throws(() => parseOrThrow(editHardwareInput, { ...HW, nics: nics(9) }), invalidInput("nics"));
    const withMacs = Array.from({ length: 9 }, (_, i) => ({ mac: `52:54:00:00:00:1${i}`, model: "e1000", forwards: [] }));
    assert.throws(() => parseOrThrow(editHardwareInput, { ...HW, nics: withMacs }), invalidInput("nics"));
  });

  const CROSS: [string, Record<string, unknown>, string[]][] = [
    ["a topology that does not divide", { vcpus: 3, sockets: 2, threads: 1 }, ["vcpus", "cannot be split"]],
    [
      "too many IDE devices for pc",
      { machine: "pc", disks: [{ id: "d1", bus: "ide", cache: "none", readOnly: false }], cdroms: cds(4) },
      ["disks", "A pc guest has 4 IDE slots"],
    ],
    [
      "two NICs with the same MAC",
      { nics: [{ mac: "52:54:00:00:00:01", model: "virtio", forwards: [] }, { mac: "52:54:00:00:00:01", model: "e1000", forwards: [] }] },
      ["nics", "same MAC"],
    ],
    [
      "a host port forwarded twice",
      {
        nics: [
          { model: "virtio", forwards: [{ protocol: "udp", hostPort: 6000, guestPort: 6000 }] },
          { model: "virtio", forwards: [{ protocol: "udp", hostPort: 6000, guestPort: 7000 }] },
        ],
      },
      ["nics", "forwarded twice"],
    ],
    ["a privileged host port", { nics: [{ model: "virtio", forwards: [{ protocol: "tcp", hostPort: 80, guestPort: 80 }] }] }, ["nics.0.forwards.0.hostPort", "at least 1024"]],
    ["a boot kind twice", { bootOrder: ["cdrom", "cdrom"] }, ["bootOrder", "at most once"]],
  ];
  for (const [what, patch, mention] of CROSS) {
    test(`rejects ${what}`, () => {
      assert.throws(() => parseOrThrow(editHardwareInput, { ...HW, ...patch }), invalidInput(...mention));
    });
  }

  const UNKNOWN: [string, Record<string, unknown>, string][] = [
    ["top level", { hostPath: "/etc" }, '"hostPath"'],
    ["a name (renaming is not editing hardware)", { name: "other" }, '"name"'],
    [
      "in a disk (its volume is not the form's to change)",
      { disks: [{ id: "d1", bus: "virtio", cache: "none", readOnly: false, volume: "../x" }] },
      'disks.0: Unrecognized key: "volume"',
    ],
    ["in a NIC", { nics: [{ model: "virtio", forwards: [], mode: "tap" }] }, 'nics.0: Unrecognized key: "mode"'],
    [
      "in a forward",
      { nics: [{ model: "virtio", forwards: [{ protocol: "tcp", hostPort: 2222, guestPort: 22, hostAddr: "0.0.0.0" }] }] },
      'nics.0.forwards.0: Unrecognized key: "hostAddr"',
    ],
  ];
  for (const [where, patch, mention] of UNKNOWN) {
    test(`rejects an unknown field ${where}`, () => {
      assert.throws(() => parseOrThrow(editHardwareInput, { ...HW, ...patch }), invalidInput("Unrecognized key", mention));
    });
  }

  const HOSTILE: [string, Record<string, unknown>, string][] = [
    ["serial as \"true\"", { serial: "true" }, "serial"],
    ["serial as \"on\" (a checkbox's form value)", { serial: "on" }, "serial"],
    ["readOnly as \"false\"", { disks: [{ id: "d1", bus: "virtio", cache: "none", readOnly: "false" }] }, "disks.0.readOnly"],
    ["vcpus as \"0x10\"", { vcpus: "0x10" }, "vcpus"],
    ["vcpus as \"4\"", { vcpus: "4" }, "vcpus"],
    ["memory as \"2048\"", { memoryMiB: "2048" }, "memoryMiB"],
    ["threads as \"2\"", { threads: "2" }, "threads"],
    ["a host port as \"2222\"", { nics: [{ model: "virtio", forwards: [{ protocol: "tcp", hostPort: "2222", guestPort: 22 }] }] }, "nics.0.forwards.0.hostPort"],
    ["tags as one string", { tags: "ci" }, "tags"],
    ["a tag as a number", { tags: [42] }, "tags.0"],
    ["description null", { description: null }, "description"],
    ["description as an array", { description: ["a"] }, "description"],
  ];
  for (const [what, patch, field] of HOSTILE) {
    test(`refuses ${what}`, () => {
      assert.throws(() => parseOrThrow(editHardwareInput, { ...HW, ...patch }), invalidInput(field));
    });
  }

  // As in guestSpecSchema: the form must not save a read-only IDE disk QEMU cannot start.
  test("rejects a read-only IDE disk: QEMU cannot start it", () => {
    assert.throws(
      () => parseOrThrow(editHardwareInput, { ...HW, disks: [{ id: "d1", bus: "ide", cache: "none", readOnly: true }] }),
      invalidInput("disks"),
    );
  });
});
