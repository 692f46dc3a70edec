/**
 * Table-driven tests of the one function that builds QEMU's command line.
 * Every expectation is written out by hand: the exact array, or exact runs of it.
 */
import { execFileSync } from "node:child_process";
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { buildQemuArgs, guestFiles, IDE_BUSES, type QemuHostLayout } from "../../server/qemu/args";
import { formatCommandLine } from "../../server/qemu/format";
import { GuesthouseError } from "../../server/domain/errors";
import type { CdromSpec, DiskSpec, GuestSpec, NicSpec } from "../../server/domain/types";

const TCG: QemuHostLayout = {
  accelerator: "tcg",
  stateDir: "/srv/gh/state/abcd1234",
  disksDir: "/srv/gh/disks",
  isoDir: "/srv/gh/isos",
};
const KVM: QemuHostLayout = { ...TCG, accelerator: "kvm" };

function spec(patch: Partial<GuestSpec> = {}): GuestSpec {
  return { id: "abcd1234", name: "web1", vcpus: 2, memoryMiB: 512, disks: [], cdroms: [], nics: [], boot: "disk", ...patch };
}

const vdisk = (volume: string): DiskSpec => ({ volume, format: "qcow2", bus: "virtio" });
const idedisk = (volume: string): DiskSpec => ({ volume, format: "raw", bus: "ide" });
const cd = (iso: string): CdromSpec => ({ iso });
const nic = (mac: string): NicSpec => ({ mac, model: "virtio", mode: "user" });

/** The whole command line of a guest with no devices on the TCG layout, written out by hand. */
const BASE_TCG: readonly string[] = [
  "-name", "guest=web1,debug-threads=on",
  "-machine", "q35,accel=tcg",
  "-cpu", "max",
  "-smp", "2",
  "-m", "512",
  "-nodefaults",
  "-no-user-config",
  "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
  "-msg", "timestamp=on",
  "-pidfile", "/srv/gh/state/abcd1234/qemu.pid",
  "-qmp", "unix:/srv/gh/state/abcd1234/qmp.sock,server=on,wait=off",
  "-display", "none",
  "-vga", "std",
  "-vnc", "unix:/srv/gh/state/abcd1234/vnc.sock",
  "-chardev",
  "socket,id=serial0,path=/srv/gh/state/abcd1234/serial.sock,server=on,wait=off,logfile=/srv/gh/state/abcd1234/serial.log,logappend=on",
  "-serial", "chardev:serial0",
];

/** True when `needle` occurs as a contiguous run inside `haystack`. */
function indexOfRun(haystack: readonly string[], needle: readonly string[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function assertRun(args: readonly string[], run: readonly string[]): number {
  const at = indexOfRun(args, run);
  assert.ok(at >= 0, `expected the run ${JSON.stringify(run)} in ${JSON.stringify(args)}`);
  return at;
}

/** The value following a flag, for every occurrence of the flag. */
function valuesOf(args: readonly string[], flag: string): string[] {
  const out: string[] = [];
  args.forEach((a, i) => {
    if (a === flag) out.push(args[i + 1] ?? "<missing>");
  });
  return out;
}

interface Case {
  name: string;
  spec: GuestSpec;
  layout?: QemuHostLayout;
  /** The exact full array. */
  exact?: readonly string[];
  /** Exact arguments after the fixed base (device part), when the base is BASE_TCG. */
  tail?: readonly string[];
  /** Exact runs that must appear somewhere. */
  runs?: readonly (readonly string[])[];
}

const CASES: Case[] = [
  {
    name: "no disk, no cdrom, no nic: just the base",
    spec: spec(),
    exact: BASE_TCG,
  },
  {
    name: "one virtio disk",
    spec: spec({ disks: [vdisk("vol00001")] }),
    tail: [
      "-drive", "file=/srv/gh/disks/vol00001.qcow2,format=qcow2,if=none,id=disk0,cache=none,aio=threads,discard=unmap",
      "-device", "virtio-blk-pci,drive=disk0,bootindex=1",
    ],
  },
  {
    name: "one IDE disk takes ide.0",
    spec: spec({ disks: [idedisk("vol00002")] }),
    tail: [
      "-drive", "file=/srv/gh/disks/vol00002.raw,format=raw,if=none,id=disk0,cache=none,aio=threads,discard=unmap",
      "-device", "ide-hd,drive=disk0,bus=ide.0,bootindex=1",
    ],
  },
  {
    name: "disk + cdrom, boot=disk: the disk gets bootindex 1",
    spec: spec({ boot: "disk", disks: [vdisk("vol00001")], cdroms: [cd("debian.iso")] }),
    tail: [
      "-drive", "file=/srv/gh/disks/vol00001.qcow2,format=qcow2,if=none,id=disk0,cache=none,aio=threads,discard=unmap",
      "-device", "virtio-blk-pci,drive=disk0,bootindex=1",
      "-drive", "file=/srv/gh/isos/debian.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=2",
    ],
  },
  {
    name: "disk + cdrom, boot=cdrom: the cdrom gets bootindex 1",
    spec: spec({ boot: "cdrom", disks: [vdisk("vol00001")], cdroms: [cd("debian.iso")] }),
    tail: [
      "-drive", "file=/srv/gh/disks/vol00001.qcow2,format=qcow2,if=none,id=disk0,cache=none,aio=threads,discard=unmap",
      "-device", "virtio-blk-pci,drive=disk0,bootindex=2",
      "-drive", "file=/srv/gh/isos/debian.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=1",
    ],
  },
  {
    name: "several disks and cdroms, boot=cdrom: cdroms first, IDE buses in order",
    spec: spec({
      boot: "cdrom",
      disks: [vdisk("vol00001"), idedisk("vol00002"), vdisk("vol00003")],
      cdroms: [cd("a.iso"), cd("b.iso")],
    }),
    tail: [
      "-drive", "file=/srv/gh/disks/vol00001.qcow2,format=qcow2,if=none,id=disk0,cache=none,aio=threads,discard=unmap",
      "-device", "virtio-blk-pci,drive=disk0,bootindex=3",
      "-drive", "file=/srv/gh/disks/vol00002.raw,format=raw,if=none,id=disk1,cache=none,aio=threads,discard=unmap",
      "-device", "ide-hd,drive=disk1,bus=ide.0,bootindex=4",
      "-drive", "file=/srv/gh/disks/vol00003.qcow2,format=qcow2,if=none,id=disk2,cache=none,aio=threads,discard=unmap",
      "-device", "virtio-blk-pci,drive=disk2,bootindex=5",
      "-drive", "file=/srv/gh/isos/a.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.1,bootindex=1",
      "-drive", "file=/srv/gh/isos/b.iso,format=raw,if=none,id=cd1,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd1,bus=ide.2,bootindex=2",
    ],
  },
  {
    name: "several disks and cdroms, boot=disk: disks first",
    spec: spec({ boot: "disk", disks: [vdisk("vol00001"), vdisk("vol00003")], cdroms: [cd("a.iso"), cd("b.iso")] }),
    tail: [
      "-drive", "file=/srv/gh/disks/vol00001.qcow2,format=qcow2,if=none,id=disk0,cache=none,aio=threads,discard=unmap",
      "-device", "virtio-blk-pci,drive=disk0,bootindex=1",
      "-drive", "file=/srv/gh/disks/vol00003.qcow2,format=qcow2,if=none,id=disk1,cache=none,aio=threads,discard=unmap",
      "-device", "virtio-blk-pci,drive=disk1,bootindex=2",
      "-drive", "file=/srv/gh/isos/a.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=3",
      "-drive", "file=/srv/gh/isos/b.iso,format=raw,if=none,id=cd1,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd1,bus=ide.1,bootindex=4",
    ],
  },
  {
    name: "several NICs, each with its own netdev and MAC",
    spec: spec({ nics: [nic("52:54:00:00:00:01"), nic("52:54:00:ab:cd:ef")] }),
    tail: [
      "-netdev", "user,id=net0",
      "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01",
      "-netdev", "user,id=net1",
      "-device", "virtio-net-pci,netdev=net1,mac=52:54:00:ab:cd:ef",
    ],
  },
  {
    name: "kvm: accel=kvm and -cpu host",
    spec: spec(),
    layout: KVM,
    runs: [["-machine", "q35,accel=kvm", "-cpu", "host"]],
  },
  {
    name: "tcg: accel=tcg and -cpu max",
    spec: spec(),
    layout: TCG,
    runs: [["-machine", "q35,accel=tcg", "-cpu", "max"]],
  },
  {
    name: "a comma in a host path is doubled in option values, but not in plain path arguments",
    spec: spec({ disks: [vdisk("vol00001")], cdroms: [cd("x.iso")] }),
    layout: { accelerator: "tcg", stateDir: "/srv/a,b/state", disksDir: "/srv/d,isks", isoDir: "/srv/i,so" },
    runs: [
      ["-pidfile", "/srv/a,b/state/qemu.pid"],
      ["-qmp", "unix:/srv/a,,b/state/qmp.sock,server=on,wait=off"],
      ["-vnc", "unix:/srv/a,,b/state/vnc.sock"],
      [
        "-chardev",
        "socket,id=serial0,path=/srv/a,,b/state/serial.sock,server=on,wait=off,logfile=/srv/a,,b/state/serial.log,logappend=on",
      ],
      ["-drive", "file=/srv/d,,isks/vol00001.qcow2,format=qcow2,if=none,id=disk0,cache=none,aio=threads,discard=unmap"],
      ["-drive", "file=/srv/i,,so/x.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on"],
    ],
  },
  {
    name: "a guest name with commas is escaped by doubling and stays one argument",
    spec: spec({ name: "a,b,,c" }),
    runs: [["-name", "guest=a,,b,,,,c,debug-threads=on", "-machine"]],
  },
  {
    name: "a guest name with shell characters is one argument, never split",
    spec: spec({ name: `evil; rm -rf / $(id) \`id\` 'q' "d" | x & y > z\nnext` }),
    runs: [["-name", `guest=evil; rm -rf / $(id) \`id\` 'q' "d" | x & y > z\nnext,debug-threads=on`, "-machine"]],
  },
];

describe("buildQemuArgs: table", () => {
  for (const c of CASES) {
    test(c.name, () => {
      const args = buildQemuArgs(c.spec, c.layout ?? TCG);
      if (c.exact) assert.deepEqual(args, c.exact);
      if (c.tail) {
        assert.deepEqual(args.slice(0, BASE_TCG.length), BASE_TCG, "the fixed part");
        assert.deepEqual(args.slice(BASE_TCG.length), c.tail, "the device part");
      }
      for (const run of c.runs ?? []) assertRun(args, run);
      // Every flag is its own element, followed by its value (never "-m 512" in one string).
      for (const a of args) assert.ok(!/^-\S+\s/.test(a), `flag and value glued together: ${JSON.stringify(a)}`);
    });
  }
});

describe("buildQemuArgs: IDE limit", () => {
  test(`${IDE_BUSES} IDE devices are fine (ide.0 .. ide.5)`, () => {
    const args = buildQemuArgs(
      spec({ disks: [idedisk("vol00001"), idedisk("vol00002"), idedisk("vol00003")], cdroms: [cd("a.iso"), cd("b.iso"), cd("c.iso")] }),
      TCG,
    );
    const buses = valuesOf(args, "-device").map((d) => /bus=(ide\.\d)/.exec(d)?.[1]);
    assert.deepEqual(buses, ["ide.0", "ide.1", "ide.2", "ide.3", "ide.4", "ide.5"]);
  });

  const tooMany: [string, GuestSpec][] = [
    ["7 IDE disks", spec({ disks: Array.from({ length: 7 }, (_, i) => idedisk(`vol0000${i}`)) })],
    ["7 cdroms", spec({ cdroms: Array.from({ length: 7 }, (_, i) => cd(`c${i}.iso`)) })],
    [
      "4 IDE disks + 3 cdroms",
      spec({ disks: Array.from({ length: 4 }, (_, i) => idedisk(`vol0000${i}`)), cdroms: [cd("a.iso"), cd("b.iso"), cd("c.iso")] }),
    ],
  ];
  for (const [name, s] of tooMany) {
    test(`more than ${IDE_BUSES} IDE devices throws invalid-input: ${name}`, () => {
      assert.throws(
        () => buildQemuArgs(s, TCG),
        (err: unknown) =>
          err instanceof GuesthouseError && err.code === "invalid-input" && err.message.includes(String(IDE_BUSES)),
      );
    });
  }

  test("virtio disks do not count against the IDE limit", () => {
    const args = buildQemuArgs(
      spec({ disks: Array.from({ length: 8 }, (_, i) => vdisk(`vol0000${i}`)), cdroms: Array.from({ length: 6 }, (_, i) => cd(`c${i}.iso`)) }),
      TCG,
    );
    assert.equal(valuesOf(args, "-device").length, 14);
  });
});

describe("buildQemuArgs: invariants", () => {
  const everything = spec({
    boot: "cdrom",
    disks: [vdisk("vol00001"), idedisk("vol00002")],
    cdroms: [cd("a.iso")],
    nics: [nic("52:54:00:00:00:01")],
  });

  for (const layout of [TCG, KVM]) {
    test(`VNC is a unix socket only, never a TCP display (${layout.accelerator})`, () => {
      const args = buildQemuArgs(everything, layout);
      assert.deepEqual(valuesOf(args, "-vnc"), [`unix:${guestFiles(layout.stateDir).vnc}`]);
      // No other way of asking for a TCP display or a TCP monitor/chardev.
      for (const a of args) {
        assert.ok(!/\btcp:|\budp:|websocket|\bhost=|\bport=|\bto=|^:\d/.test(a), `looks like a network listener: ${a}`);
      }
      for (const flag of ["-spice", "-monitor", "-gdb", "-s", "-daemonize", "-runas"]) {
        assert.ok(!args.includes(flag), `unexpected ${flag}`);
      }
    });

    test(`QMP is a unix socket with server=on,wait=off (${layout.accelerator})`, () => {
      const args = buildQemuArgs(everything, layout);
      assert.deepEqual(valuesOf(args, "-qmp"), [`unix:${layout.stateDir}/qmp.sock,server=on,wait=off`]);
    });

    test(`-nodefaults and -sandbox on,... are present (${layout.accelerator})`, () => {
      const args = buildQemuArgs(everything, layout);
      assert.ok(args.includes("-nodefaults"));
      assert.ok(args.includes("-no-user-config"));
      const sandbox = valuesOf(args, "-sandbox");
      assert.equal(sandbox.length, 1);
      assert.match(sandbox[0]!, /^on,/);
      for (const opt of ["obsolete=deny", "elevateprivileges=deny", "spawn=deny", "resourcecontrol=deny"]) {
        assert.ok(sandbox[0]!.split(",").includes(opt), `sandbox lacks ${opt}`);
      }
    });

    test(`no argument carries shell syntax: the array is the API (${layout.accelerator})`, () => {
      const args = buildQemuArgs(everything, layout);
      for (const a of args) {
        assert.equal(typeof a, "string");
        assert.ok(a.length > 0, "empty argument");
        assert.ok(!/[\s;&|`$<>'"\\(){}*?!#~]/.test(a), `shell metacharacter or whitespace in ${JSON.stringify(a)}`);
      }
      // The binary is not part of the array; the caller spawns it without a shell.
      assert.ok(!args.some((a) => a.includes("qemu-system")));
    });
  }

  test("the same spec gives the same array (pure), and the spec is not mutated", () => {
    const copy = structuredClone(everything);
    const a = buildQemuArgs(everything, TCG);
    const b = buildQemuArgs(everything, TCG);
    assert.deepEqual(a, b);
    assert.notEqual(a, b);
    assert.deepEqual(everything, copy);
  });

  test("vcpus and memory come from the spec", () => {
    const args = buildQemuArgs(spec({ vcpus: 7, memoryMiB: 3072 }), TCG);
    assertRun(args, ["-smp", "7", "-m", "3072"]);
  });

  test("every device's bootindex is unique and 1..n without gaps", () => {
    const args = buildQemuArgs(everything, TCG);
    const indexes = valuesOf(args, "-device")
      .map((d) => /bootindex=(\d+)/.exec(d)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((x, y) => x - y);
    assert.deepEqual(indexes, [1, 2, 3]);
  });
});

describe("guestFiles", () => {
  test("names every file inside the state folder", () => {
    assert.deepEqual(guestFiles("/srv/gh/state/g1"), {
      qmp: "/srv/gh/state/g1/qmp.sock",
      vnc: "/srv/gh/state/g1/vnc.sock",
      serial: "/srv/gh/state/g1/serial.sock",
      serialLog: "/srv/gh/state/g1/serial.log",
      pid: "/srv/gh/state/g1/qemu.pid",
      log: "/srv/gh/state/g1/qemu.log",
    });
  });

  test("a trailing slash does not double up", () => {
    assert.equal(guestFiles("/srv/gh/state/g1/").qmp, "/srv/gh/state/g1/qmp.sock");
  });
});

describe("formatCommandLine", () => {
  const TABLE: [string, readonly string[], string][] = [
    ["plain arguments stay bare", ["qemu-system-x86_64", "-m", "512", "-qmp", "unix:/a/b.sock,server=on,wait=off"],
      "qemu-system-x86_64 -m 512 -qmp unix:/a/b.sock,server=on,wait=off"],
    ["an argument with a space is single-quoted", ["-name", "guest=my vm,debug-threads=on"],
      "-name 'guest=my vm,debug-threads=on'"],
    ["a single quote is closed, escaped and reopened", ["-name", "it's"], `-name 'it'\\''s'`],
    ["shell characters are quoted", ["$(id);`x`|&>"], `'$(id);\`x\`|&>'`],
    ["an empty argument is shown as ''", ["a", "", "b"], "a '' b"],
    ["no arguments is an empty line", [], ""],
  ];
  for (const [name, argv, expected] of TABLE) {
    test(name, () => assert.equal(formatCommandLine(argv), expected));
  }

  test("a POSIX shell reads the displayed line back into exactly the same array", () => {
    const argv = [
      "plain",
      "with space",
      "it's",
      "''",
      "a'b'c",
      "$HOME",
      "`id`",
      "tab\there",
      "new\nline",
      "back\\slash",
      "*",
      "",
      "--",
      "x,,y",
      "ünï",
    ];
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${formatCommandLine(argv)}`], { encoding: "utf8" });
    assert.deepEqual(out.split("\0").slice(0, -1), argv);
  });

  test("the built QEMU array survives the round trip too", () => {
    const args = buildQemuArgs(spec({ name: "o'dd name; $(x)", disks: [vdisk("vol00001")], cdroms: [cd("a.iso")] }), TCG);
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${formatCommandLine(args)}`], { encoding: "utf8" });
    assert.deepEqual(out.split("\0").slice(0, -1), args);
  });

  test("the wrapped form puts one option per line and still round-trips through sh", () => {
    const args = buildQemuArgs(spec({ name: "o'dd name", disks: [vdisk("vol00001")] }), TCG);
    const wrapped = formatCommandLine(args, { wrap: true });
    const lines = wrapped.split("\n");
    assert.equal(lines.length, args.filter((a) => a.startsWith("-")).length);
    assert.ok(lines.slice(1).every((l) => l.startsWith("  -")), "every continuation line starts with an option");
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${wrapped}`], { encoding: "utf8" });
    assert.deepEqual(out.split("\0").slice(0, -1), args);
  });
});
