/**
 * Table-driven tests of the one function that builds QEMU's command line.
 * Every expectation is written out by hand: the exact array, or exact runs of it.
 */
import { execFileSync } from "node:child_process";
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { IDE_SLOT_COUNT } from "../../server/domain/types";
import {
  buildQemuArgs,
  diskPath,
  guestFiles,
  hotplugCommands,
  hotplugPorts,
  ideSlots,
  OVMF_CODE,
  vncTlsPortOf,
  type QemuHostLayout,
  type VncTlsLayout,
} from "../../server/qemu/args";
import { formatCommandLine } from "../../server/qemu/format";
import { GuesthouseError } from "../../server/domain/errors";
import type { CdromSpec, DiskBus, DiskCache, DiskSpec, GuestSpec, NicModel, NicSpec, PortForward } from "../../server/domain/types";

const TCG: QemuHostLayout = {
  accelerator: "tcg",
  stateDir: "/srv/gh/state/abcd1234",
  pools: { default: "/srv/gh/disks", fast: "/srv/nvme/gh" },
  secretsDir: "/srv/gh/secrets",
  isoDir: "/srv/gh/isos",
};
const KVM: QemuHostLayout = { ...TCG, accelerator: "kvm" };

/** A small BIOS q35 guest, booting disk then CD-ROM (network left out), serial on. */
function spec(patch: Partial<GuestSpec> = {}): GuestSpec {
  return {
    id: "abcd1234",
    name: "web1",
    machine: "q35",
    firmware: "bios",
    vcpus: 2,
    sockets: 1,
    threads: 1,
    memoryMiB: 512,
    disks: [],
    cdroms: [],
    nics: [],
    bootOrder: ["disk", "cdrom"],
    display: "std",
    serial: true,
    rtc: "utc",
    ...patch,
  };
}

const disk = (volume: string, bus: DiskBus, patch: Partial<DiskSpec> = {}): DiskSpec => ({
  volume,
  pool: "default",
  file: `${volume}.${bus === "ide" ? "raw" : "qcow2"}`,
  format: bus === "ide" ? "raw" : "qcow2",
  backing: [],
  encrypted: false,
  bus,
  cache: "none",
  readOnly: false,
  ...patch,
});
const vdisk = (volume: string, patch: Partial<DiskSpec> = {}) => disk(volume, "virtio", patch);
const idedisk = (volume: string, patch: Partial<DiskSpec> = {}) => disk(volume, "ide", patch);
const scsidisk = (volume: string, patch: Partial<DiskSpec> = {}) => disk(volume, "scsi", patch);
const cd = (iso: string): CdromSpec => ({ iso });
const nic = (mac: string, model: NicModel = "virtio", forwards: PortForward[] = []): NicSpec => ({ mac, model, mode: "user", isolated: false, forwards });

/** The whole command line of a guest with no devices on the TCG layout, written out by hand. */
const BASE_TCG: readonly string[] = [
  "-name", "guest=web1,debug-threads=on",
  "-machine", "q35,accel=tcg,graphics=off",
  "-cpu", "max",
  "-smp", "2,sockets=1,cores=2,threads=1",
  "-m", "512",
  "-nodefaults",
  "-no-user-config",
  "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
  "-msg", "timestamp=on",
  "-pidfile", "/srv/gh/state/abcd1234/qemu.pid",
  "-qmp", "unix:/srv/gh/state/abcd1234/qmp.sock,server=on,wait=off",
  "-display", "none",
  "-vga", "std",
  "-vnc", "unix:/srv/gh/state/abcd1234/vnc.sock,password=on",
  "-rtc", "base=utc",
  "-boot", "strict=on",
  "-device", "pvpanic",
  "-action", "panic=pause",
  "-chardev",
  "socket,id=serial0,path=/srv/gh/state/abcd1234/serial.sock,server=on,wait=off,logfile=/srv/gh/state/abcd1234/serial.log,logappend=on",
  "-serial", "chardev:serial0",
];

/** The empty hot-plug root ports every q35 guest gets, last on its command line. */
const PORT_DEVICES: readonly string[] = [
  "pcie-root-port,id=hotplug0,chassis=1",
  "pcie-root-port,id=hotplug1,chassis=2",
  "pcie-root-port,id=hotplug2,chassis=3",
  "pcie-root-port,id=hotplug3,chassis=4",
];
const SPARE_PORTS: readonly string[] = [
  "-device", "pcie-root-port,id=hotplug0,chassis=1",
  "-device", "pcie-root-port,id=hotplug1,chassis=2",
  "-device", "pcie-root-port,id=hotplug2,chassis=3",
  "-device", "pcie-root-port,id=hotplug3,chassis=4",
];

/**
 * A disk's -blockdev as the builder must write it: its format node (named `id`) over its
 * file node, cache and discard on both, `backing: null` for a qcow2 of its own.
 */
function bd(file: string, format: "qcow2" | "raw", id: string, cacheMode: DiskCache, opts: { readOnly?: boolean; encrypted?: boolean } = {}): string {
  const modes: Record<DiskCache, [boolean, boolean]> = { none: [true, false], writeback: [false, false], writethrough: [false, false], directsync: [true, false], unsafe: [false, true] };
  const [direct, noFlush] = modes[cacheMode];
  const readOnly = opts.readOnly ?? false;
  const cache = `"cache":{"direct":${direct},"no-flush":${noFlush}}`;
  const discard = readOnly ? "" : `"discard":"unmap",`;
  const fileNode = `{"driver":"file","filename":${JSON.stringify(file.replaceAll(",,", ","))},"read-only":${readOnly},${discard}${cache}}`;
  const backing = format === "qcow2" ? `,"backing":null` : "";
  const encrypt = opts.encrypted ? `,"encrypt":{"format":"luks","key-secret":"${id}-secret"}` : "";
  return `{"driver":"${format}","read-only":${readOnly},${discard}${cache},"file":${fileNode},"node-name":"${id}"${backing}${encrypt}}`;
}

/** Disk nodes, written out: one per disk kind used below. */
const BLOCKDEV = {
  vol1: bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "none"),
  vol2ide1: bd("/srv/gh/disks/vol00002.raw", "raw", "disk1", "none"),
} as const;

/** CD-ROM drive strings, written out. */
const DRIVE = {
  cdA0: "file=/srv/gh/isos/a.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
  cdB1: "file=/srv/gh/isos/b.iso,format=raw,if=none,id=cd1,media=cdrom,readonly=on",
} as const;

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

function invalidInput(...mustMention: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof GuesthouseError, `expected a GuesthouseError, got ${String(err)}`);
    assert.equal(err.code, "invalid-input");
    for (const m of mustMention) assert.ok(err.message.includes(m), `message lacks ${JSON.stringify(m)}: ${err.message}`);
    return true;
  };
}

interface Case {
  name: string;
  spec: GuestSpec;
  layout?: QemuHostLayout;
  /** The exact full array. */
  exact?: readonly string[];
  /** Exact arguments after the fixed base (device part), when the base is BASE_TCG; the spare ports (q35) follow them. */
  tail?: readonly string[];
  /** Exact runs that must appear somewhere. */
  runs?: readonly (readonly string[])[];
  /** Flags that must not appear at all. */
  absent?: readonly string[];
  /** Exact values of one flag, all occurrences in order. */
  values?: Readonly<Record<string, readonly string[]>>;
}

const SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";
const SERIAL_CHARDEV =
  "socket,id=serial0,path=/srv/gh/state/abcd1234/serial.sock,server=on,wait=off,logfile=/srv/gh/state/abcd1234/serial.log,logappend=on";

/** One virtio disk, one CD-ROM and one NIC, with the bootindex suffix of each written in. */
function oneOfEach(diskBoot: string, cdBoot: string, nicBoot: string): string[] {
  return [
    "-blockdev", BLOCKDEV.vol1,
    "-device", `virtio-blk-pci,drive=disk0,id=disk0${diskBoot}`,
    "-drive", DRIVE.cdA0,
    "-device", `ide-cd,drive=cd0,bus=ide.0${cdBoot}`,
    "-netdev", "user,id=net0",
    "-device", `virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01${nicBoot}`,
  ];
}
const ONE_OF_EACH = { disks: [vdisk("vol00001")], cdroms: [cd("a.iso")], nics: [nic("52:54:00:00:00:01")] };

const CASES: Case[] = [
  {
    name: "no disk, no cdrom, no nic: just the base",
    spec: spec(),
    exact: [...BASE_TCG, ...SPARE_PORTS],
  },
  {
    name: "one virtio disk",
    spec: spec({ disks: [vdisk("vol00001")] }),
    tail: ["-blockdev", BLOCKDEV.vol1, "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1"],
  },
  {
    name: "one IDE disk takes ide.0 (q35)",
    spec: spec({ disks: [idedisk("vol00002")] }),
    tail: [
      "-blockdev", bd("/srv/gh/disks/vol00002.raw", "raw", "disk0", "none"),
      "-device", "ide-hd,drive=disk0,id=disk0,bus=ide.0,bootindex=1",
    ],
  },
  {
    name: "disk + cdrom, bootOrder disk,cdrom: the disk gets bootindex 1",
    spec: spec({ bootOrder: ["disk", "cdrom"], disks: [vdisk("vol00001")], cdroms: [cd("a.iso")] }),
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-drive", DRIVE.cdA0,
      "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=2",
    ],
  },
  {
    name: "disk + cdrom, bootOrder cdrom,disk: the cdrom gets bootindex 1",
    spec: spec({ bootOrder: ["cdrom", "disk"], disks: [vdisk("vol00001")], cdroms: [cd("a.iso")] }),
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=2",
      "-drive", DRIVE.cdA0,
      "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=1",
    ],
  },
  {
    name: "several disks and cdroms, bootOrder cdrom,disk: cdroms first, IDE buses in order",
    spec: spec({
      bootOrder: ["cdrom", "disk"],
      disks: [vdisk("vol00001"), idedisk("vol00002"), vdisk("vol00003")],
      cdroms: [cd("a.iso"), cd("b.iso")],
    }),
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=3",
      "-blockdev", BLOCKDEV.vol2ide1,
      "-device", "ide-hd,drive=disk1,id=disk1,bus=ide.0,bootindex=4",
      "-blockdev", bd("/srv/gh/disks/vol00003.qcow2", "qcow2", "disk2", "none"),
      "-device", "virtio-blk-pci,drive=disk2,id=disk2,bootindex=5",
      "-drive", DRIVE.cdA0,
      "-device", "ide-cd,drive=cd0,bus=ide.1,bootindex=1",
      "-drive", DRIVE.cdB1,
      "-device", "ide-cd,drive=cd1,bus=ide.2,bootindex=2",
    ],
  },
  {
    name: "several disks and cdroms, bootOrder disk,cdrom: disks first",
    spec: spec({ bootOrder: ["disk", "cdrom"], disks: [vdisk("vol00001"), vdisk("vol00003")], cdroms: [cd("a.iso"), cd("b.iso")] }),
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-blockdev", bd("/srv/gh/disks/vol00003.qcow2", "qcow2", "disk1", "none"),
      "-device", "virtio-blk-pci,drive=disk1,id=disk1,bootindex=2",
      "-drive", DRIVE.cdA0,
      "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=3",
      "-drive", DRIVE.cdB1,
      "-device", "ide-cd,drive=cd1,bus=ide.1,bootindex=4",
    ],
  },
  {
    name: "several NICs, each with its own netdev and MAC; network not in bootOrder: no bootindex",
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
    runs: [["-machine", "q35,accel=kvm,graphics=off", "-cpu", "host"]],
  },
  {
    name: "tcg: accel=tcg and -cpu max",
    spec: spec(),
    layout: TCG,
    runs: [["-machine", "q35,accel=tcg,graphics=off", "-cpu", "max"]],
  },
  {
    name: "a comma in a host path is doubled in option values, but not in plain path arguments",
    spec: spec({ firmware: "uefi", disks: [vdisk("vol00001")], cdroms: [cd("x.iso")] }),
    layout: { accelerator: "tcg", stateDir: "/srv/a,b/state", pools: { default: "/srv/d,isks" }, secretsDir: "/srv/s,ecrets", isoDir: "/srv/i,so" },
    runs: [
      ["-pidfile", "/srv/a,b/state/qemu.pid"],
      ["-qmp", "unix:/srv/a,,b/state/qmp.sock,server=on,wait=off"],
      ["-vnc", "unix:/srv/a,,b/state/vnc.sock,password=on"],
      ["-drive", "if=pflash,format=raw,unit=1,file=/srv/a,,b/state/efivars.fd"],
      [
        "-chardev",
        "socket,id=serial0,path=/srv/a,,b/state/serial.sock,server=on,wait=off,logfile=/srv/a,,b/state/serial.log,logappend=on",
      ],
      ["-blockdev", bd("/srv/d,,isks/vol00001.qcow2", "qcow2", "disk0", "none")],
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

  // ---- machine -------------------------------------------------------------------
  {
    name: "machine pc: -machine pc, everything else as q35",
    spec: spec({ machine: "pc" }),
    exact: [
      "-name", "guest=web1,debug-threads=on",
      "-machine", "pc,accel=tcg,graphics=off",
      "-cpu", "max",
      "-smp", "2,sockets=1,cores=2,threads=1",
      "-m", "512",
      "-nodefaults",
      "-no-user-config",
      "-sandbox", SANDBOX,
      "-msg", "timestamp=on",
      "-pidfile", "/srv/gh/state/abcd1234/qemu.pid",
      "-qmp", "unix:/srv/gh/state/abcd1234/qmp.sock,server=on,wait=off",
      "-display", "none",
      "-vga", "std",
      "-vnc", "unix:/srv/gh/state/abcd1234/vnc.sock,password=on",
      "-rtc", "base=utc",
      "-boot", "strict=on",
      "-device", "pvpanic",
      "-action", "panic=pause",
      "-chardev", SERIAL_CHARDEV,
      "-serial", "chardev:serial0",
    ],
  },
  {
    name: "machine pc, kvm: -machine pc,accel=kvm",
    spec: spec({ machine: "pc" }),
    layout: KVM,
    runs: [["-machine", "pc,accel=kvm,graphics=off", "-cpu", "host"]],
  },
  {
    name: "pc IDE slots: two buses of two units, in order (disks first, then CD-ROMs)",
    spec: spec({
      machine: "pc",
      bootOrder: ["cdrom", "disk"],
      disks: [idedisk("vol00001"), idedisk("vol00002")],
      cdroms: [cd("a.iso"), cd("b.iso")],
    }),
    values: {
      "-device": [
        "pvpanic",
        "ide-hd,drive=disk0,id=disk0,bus=ide.0,unit=0,bootindex=3",
        "ide-hd,drive=disk1,id=disk1,bus=ide.0,unit=1,bootindex=4",
        "ide-cd,drive=cd0,bus=ide.1,unit=0,bootindex=1",
        "ide-cd,drive=cd1,bus=ide.1,unit=1,bootindex=2",
      ],
    },
  },
  {
    name: "pc IDE slots: a virtio and a SCSI disk take no IDE slot",
    spec: spec({ machine: "pc", disks: [vdisk("vol00001"), idedisk("vol00002"), scsidisk("vol00003")], cdroms: [cd("a.iso")] }),
    values: {
      "-device": [
        "pvpanic",
        "virtio-scsi-pci,id=scsi0",
        "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
        "ide-hd,drive=disk1,id=disk1,bus=ide.0,unit=0,bootindex=2",
        "scsi-hd,drive=disk2,id=disk2,bus=scsi0.0,bootindex=3",
        "ide-cd,drive=cd0,bus=ide.0,unit=1,bootindex=4",
      ],
    },
  },
  {
    name: "q35 IDE slots: one AHCI port each, ide.0 .. ide.5",
    spec: spec({
      bootOrder: [],
      disks: [idedisk("vol00001"), idedisk("vol00002"), idedisk("vol00003")],
      cdroms: [cd("a.iso"), cd("b.iso"), cd("c.iso")],
    }),
    values: {
      "-device": [
        "pvpanic",
        "ide-hd,drive=disk0,id=disk0,bus=ide.0",
        "ide-hd,drive=disk1,id=disk1,bus=ide.1",
        "ide-hd,drive=disk2,id=disk2,bus=ide.2",
        "ide-cd,drive=cd0,bus=ide.3",
        "ide-cd,drive=cd1,bus=ide.4",
        "ide-cd,drive=cd2,bus=ide.5",
        ...PORT_DEVICES,
      ],
    },
  },

  // ---- firmware ------------------------------------------------------------------
  {
    name: "UEFI: OVMF code read-only as pflash unit 0, the guest's efivars.fd as unit 1",
    spec: spec({ firmware: "uefi" }),
    exact: [
      "-name", "guest=web1,debug-threads=on",
      "-machine", "q35,accel=tcg",
      "-cpu", "max",
      "-smp", "2,sockets=1,cores=2,threads=1",
      "-m", "512",
      "-nodefaults",
      "-no-user-config",
      "-sandbox", SANDBOX,
      "-msg", "timestamp=on",
      "-pidfile", "/srv/gh/state/abcd1234/qemu.pid",
      "-qmp", "unix:/srv/gh/state/abcd1234/qmp.sock,server=on,wait=off",
      "-display", "none",
      "-vga", "std",
      "-vnc", "unix:/srv/gh/state/abcd1234/vnc.sock,password=on",
      "-rtc", "base=utc",
      "-boot", "strict=on",
      "-device", "pvpanic",
      "-action", "panic=pause",
      "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "-drive", "if=pflash,format=raw,unit=1,file=/srv/gh/state/abcd1234/efivars.fd",
      "-chardev", SERIAL_CHARDEV,
      "-serial", "chardev:serial0",
      ...SPARE_PORTS,
    ],
  },
  {
    name: "UEFI on pc with a disk: the pflash drives, and the disk as a node of its own",
    spec: spec({ machine: "pc", firmware: "uefi", disks: [vdisk("vol00001")] }),
    values: {
      "-drive": [
        "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
        "if=pflash,format=raw,unit=1,file=/srv/gh/state/abcd1234/efivars.fd",
      ],
      "-blockdev": [BLOCKDEV.vol1],
    },
  },
  {
    name: "BIOS: no pflash drive at all",
    spec: spec({ firmware: "bios", disks: [vdisk("vol00001")] }),
    values: { "-drive": [], "-blockdev": [BLOCKDEV.vol1] },
  },

  // ---- serial --------------------------------------------------------------------
  {
    name: "serial off: neither -chardev nor -serial",
    spec: spec({ serial: false }),
    exact: [
      "-name", "guest=web1,debug-threads=on",
      "-machine", "q35,accel=tcg",
      "-cpu", "max",
      "-smp", "2,sockets=1,cores=2,threads=1",
      "-m", "512",
      "-nodefaults",
      "-no-user-config",
      "-sandbox", SANDBOX,
      "-msg", "timestamp=on",
      "-pidfile", "/srv/gh/state/abcd1234/qemu.pid",
      "-qmp", "unix:/srv/gh/state/abcd1234/qmp.sock,server=on,wait=off",
      "-display", "none",
      "-vga", "std",
      "-vnc", "unix:/srv/gh/state/abcd1234/vnc.sock,password=on",
      "-rtc", "base=utc",
      "-boot", "strict=on",
      "-device", "pvpanic",
      "-action", "panic=pause",
      ...SPARE_PORTS,
    ],
    absent: ["-chardev", "-serial"],
  },
  {
    name: "serial on: one socket chardev with a log file, and -serial on it",
    spec: spec({ serial: true }),
    values: { "-chardev": [SERIAL_CHARDEV], "-serial": ["chardev:serial0"] },
  },

  // ---- display and clock ---------------------------------------------------------
  {
    name: "display std",
    spec: spec({ display: "std" }),
    runs: [["-display", "none", "-vga", "std", "-vnc"]],
    values: { "-vga": ["std"] },
  },
  {
    name: "display virtio",
    spec: spec({ display: "virtio" }),
    runs: [["-display", "none", "-vga", "virtio", "-vnc"]],
    values: { "-vga": ["virtio"] },
  },
  {
    name: "display qxl",
    spec: spec({ display: "qxl" }),
    runs: [["-display", "none", "-vga", "qxl", "-vnc"]],
    values: { "-vga": ["qxl"] },
  },
  {
    name: "rtc utc",
    spec: spec({ rtc: "utc" }),
    values: { "-rtc": ["base=utc"] },
  },
  {
    name: "rtc localtime",
    spec: spec({ rtc: "localtime" }),
    values: { "-rtc": ["base=localtime"] },
  },

  // ---- boot menu -----------------------------------------------------------------
  {
    name: "bootMenu true: strict boot with the menu shown for 10 s",
    spec: spec({ bootMenu: true }),
    values: { "-boot": ["strict=on,menu=on,splash-time=10000"] },
  },
  {
    name: "bootMenu false: strict boot, no menu",
    spec: spec({ bootMenu: false }),
    values: { "-boot": ["strict=on"] },
  },
  {
    name: "bootMenu absent: strict boot, no menu",
    spec: spec(),
    values: { "-boot": ["strict=on"] },
  },

  // ---- topology ------------------------------------------------------------------
  {
    name: "topology 1 vCPU: 1 socket, 1 core, 1 thread",
    spec: spec({ vcpus: 1, sockets: 1, threads: 1 }),
    values: { "-smp": ["1,sockets=1,cores=1,threads=1"] },
  },
  {
    name: "topology 8 vCPUs, 2 sockets, 2 threads: 2 cores",
    spec: spec({ vcpus: 8, sockets: 2, threads: 2 }),
    values: { "-smp": ["8,sockets=2,cores=2,threads=2"] },
  },
  {
    name: "topology 6 vCPUs, 3 sockets, 1 thread: 2 cores",
    spec: spec({ vcpus: 6, sockets: 3, threads: 1 }),
    values: { "-smp": ["6,sockets=3,cores=2,threads=1"] },
  },
  {
    name: "topology 4 vCPUs, 1 socket, 2 threads: 2 cores",
    spec: spec({ vcpus: 4, sockets: 1, threads: 2 }),
    values: { "-smp": ["4,sockets=1,cores=2,threads=2"] },
  },
  {
    name: "topology 12 vCPUs, 12 sockets: 1 core each",
    spec: spec({ vcpus: 12, sockets: 12, threads: 1 }),
    values: { "-smp": ["12,sockets=12,cores=1,threads=1"] },
  },
  {
    name: "topology 64 vCPUs, 4 sockets, 8 threads: 2 cores",
    spec: spec({ vcpus: 64, sockets: 4, threads: 8 }),
    values: { "-smp": ["64,sockets=4,cores=2,threads=8"] },
  },

  // ---- disk buses ----------------------------------------------------------------
  {
    name: "one SCSI disk: the virtio-scsi controller, then the disk on scsi0.0",
    spec: spec({ disks: [scsidisk("vol00001")] }),
    tail: [
      "-device", "virtio-scsi-pci,id=scsi0",
      "-blockdev", BLOCKDEV.vol1,
      "-device", "scsi-hd,drive=disk0,id=disk0,bus=scsi0.0,bootindex=1",
    ],
  },
  {
    name: "two SCSI disks share ONE controller",
    spec: spec({ disks: [scsidisk("vol00001"), scsidisk("vol00003")] }),
    tail: [
      "-device", "virtio-scsi-pci,id=scsi0",
      "-blockdev", BLOCKDEV.vol1,
      "-device", "scsi-hd,drive=disk0,id=disk0,bus=scsi0.0,bootindex=1",
      "-blockdev", bd("/srv/gh/disks/vol00003.qcow2", "qcow2", "disk1", "none"),
      "-device", "scsi-hd,drive=disk1,id=disk1,bus=scsi0.0,bootindex=2",
    ],
  },
  {
    name: "virtio, SCSI and IDE disks mixed: one controller first, each disk on its own bus",
    spec: spec({ disks: [vdisk("vol00001"), scsidisk("vol00003"), idedisk("vol00002")] }),
    tail: [
      "-device", "virtio-scsi-pci,id=scsi0",
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-blockdev", bd("/srv/gh/disks/vol00003.qcow2", "qcow2", "disk1", "none"),
      "-device", "scsi-hd,drive=disk1,id=disk1,bus=scsi0.0,bootindex=2",
      "-blockdev", bd("/srv/gh/disks/vol00002.raw", "raw", "disk2", "none"),
      "-device", "ide-hd,drive=disk2,id=disk2,bus=ide.0,bootindex=3",
    ],
  },
  {
    name: "virtio and IDE disks only: no SCSI controller",
    spec: spec({ disks: [vdisk("vol00001"), idedisk("vol00002")], cdroms: [cd("a.iso")] }),
    values: {
      "-device": [
        "pvpanic",
        "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
        "ide-hd,drive=disk1,id=disk1,bus=ide.0,bootindex=2",
        "ide-cd,drive=cd0,bus=ide.1,bootindex=3",
        ...PORT_DEVICES,
      ],
    },
  },

  // ---- cache modes and read-only -------------------------------------------------
  ...(
    [
      ["none", bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "none")],
      ["writeback", bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "writeback")],
      ["writethrough", bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "writethrough")],
      ["directsync", bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "directsync")],
      ["unsafe", bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "unsafe")],
    ] as const
  ).map(
    ([cache, drive]): Case => ({
      name: `cache mode ${cache}`,
      spec: spec({ disks: [vdisk("vol00001", { cache: cache as DiskCache })] }),
      // Without a volatile write cache (writethrough, directsync) the device says so.
      tail: ["-blockdev", drive, "-device", `virtio-blk-pci,drive=disk0,id=disk0${["writethrough", "directsync"].includes(cache) ? ",write-cache=off" : ""},bootindex=1`],
    }),
  ),
  {
    name: "two disks with different cache modes keep their own",
    spec: spec({ disks: [vdisk("vol00001", { cache: "unsafe" }), idedisk("vol00002", { cache: "writethrough" })] }),
    values: {
      "-blockdev": [
        bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "unsafe"),
        bd("/srv/gh/disks/vol00002.raw", "raw", "disk1", "writethrough"),
      ],
    },
  },
  {
    name: "a read-only virtio disk: ,readonly=on on its drive",
    spec: spec({ disks: [vdisk("vol00001", { readOnly: true })] }),
    tail: [
      "-blockdev", bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "none", { readOnly: true }),
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
    ],
  },
  {
    name: "a read-only SCSI disk next to a writable one: only its drive is read-only",
    spec: spec({ disks: [scsidisk("vol00001", { readOnly: true, cache: "directsync" }), vdisk("vol00003")] }),
    values: {
      "-blockdev": [
        bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "directsync", { readOnly: true }),
        bd("/srv/gh/disks/vol00003.qcow2", "qcow2", "disk1", "none"),
      ],
    },
  },

  // ---- NIC models and port forwards ----------------------------------------------
  {
    name: "NIC models: virtio-net-pci, e1000, rtl8139",
    spec: spec({ nics: [nic("52:54:00:00:00:01", "virtio"), nic("52:54:00:00:00:02", "e1000"), nic("52:54:00:00:00:03", "rtl8139")] }),
    tail: [
      "-netdev", "user,id=net0",
      "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01",
      "-netdev", "user,id=net1",
      "-device", "e1000,netdev=net1,mac=52:54:00:00:00:02",
      "-netdev", "user,id=net2",
      "-device", "rtl8139,netdev=net2,mac=52:54:00:00:00:03",
    ],
  },
  {
    name: "port forwards: tcp and udp hostfwd on the NIC's own netdev, in order",
    spec: spec({
      nics: [
        nic("52:54:00:00:00:01", "virtio", [
          { protocol: "tcp", hostPort: 2222, guestPort: 22 },
          { protocol: "udp", hostPort: 5353, guestPort: 53 },
        ]),
        nic("52:54:00:00:00:02", "e1000", [{ protocol: "tcp", hostPort: 8080, guestPort: 80 }]),
      ],
    }),
    tail: [
      "-netdev", "user,id=net0,hostfwd=tcp::2222-:22,hostfwd=udp::5353-:53",
      "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01",
      "-netdev", "user,id=net1,hostfwd=tcp::8080-:80",
      "-device", "e1000,netdev=net1,mac=52:54:00:00:00:02",
    ],
  },

  // ---- boot order ----------------------------------------------------------------
  {
    name: "bootOrder disk,cdrom,network",
    spec: spec({ bootOrder: ["disk", "cdrom", "network"], ...ONE_OF_EACH }),
    tail: oneOfEach(",bootindex=1", ",bootindex=2", ",bootindex=3"),
  },
  {
    name: "bootOrder disk,network,cdrom",
    spec: spec({ bootOrder: ["disk", "network", "cdrom"], ...ONE_OF_EACH }),
    tail: oneOfEach(",bootindex=1", ",bootindex=3", ",bootindex=2"),
  },
  {
    name: "bootOrder cdrom,disk,network",
    spec: spec({ bootOrder: ["cdrom", "disk", "network"], ...ONE_OF_EACH }),
    tail: oneOfEach(",bootindex=2", ",bootindex=1", ",bootindex=3"),
  },
  {
    name: "bootOrder cdrom,network,disk",
    spec: spec({ bootOrder: ["cdrom", "network", "disk"], ...ONE_OF_EACH }),
    tail: oneOfEach(",bootindex=3", ",bootindex=1", ",bootindex=2"),
  },
  {
    name: "bootOrder network,disk,cdrom: the NIC gets bootindex 1",
    spec: spec({ bootOrder: ["network", "disk", "cdrom"], ...ONE_OF_EACH }),
    tail: oneOfEach(",bootindex=2", ",bootindex=3", ",bootindex=1"),
  },
  {
    name: "bootOrder network,cdrom,disk: the NIC gets bootindex 1",
    spec: spec({ bootOrder: ["network", "cdrom", "disk"], ...ONE_OF_EACH }),
    tail: oneOfEach(",bootindex=3", ",bootindex=2", ",bootindex=1"),
  },
  {
    name: "bootOrder cdrom,disk: the NIC, left out, gets no bootindex",
    spec: spec({ bootOrder: ["cdrom", "disk"], ...ONE_OF_EACH }),
    tail: oneOfEach(",bootindex=2", ",bootindex=1", ""),
  },
  {
    name: "bootOrder network,disk: the CD-ROM, left out, gets no bootindex",
    spec: spec({ bootOrder: ["network", "disk"], ...ONE_OF_EACH }),
    tail: oneOfEach(",bootindex=2", "", ",bootindex=1"),
  },
  {
    name: "bootOrder network only: neither disk nor CD-ROM gets a bootindex",
    spec: spec({ bootOrder: ["network"], ...ONE_OF_EACH }),
    tail: oneOfEach("", "", ",bootindex=1"),
  },
  {
    name: "bootOrder cdrom only: neither disk nor NIC gets a bootindex",
    spec: spec({ bootOrder: ["cdrom"], ...ONE_OF_EACH }),
    tail: oneOfEach("", ",bootindex=1", ""),
  },
  {
    name: "bootOrder empty: no device gets a bootindex",
    spec: spec({ bootOrder: [], ...ONE_OF_EACH }),
    tail: oneOfEach("", "", ""),
  },
  {
    name: "bootOrder network,disk with two NICs and two disks: NICs 1 and 2 in order, then disks",
    spec: spec({
      bootOrder: ["network", "disk"],
      disks: [vdisk("vol00001"), scsidisk("vol00003")],
      nics: [nic("52:54:00:00:00:01"), nic("52:54:00:00:00:02", "e1000")],
    }),
    values: {
      "-device": [
        "pvpanic",
        "virtio-scsi-pci,id=scsi0",
        "virtio-blk-pci,drive=disk0,id=disk0,bootindex=3",
        "scsi-hd,drive=disk1,id=disk1,bus=scsi0.0,bootindex=4",
        "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,bootindex=1",
        "e1000,netdev=net1,mac=52:54:00:00:00:02,bootindex=2",
        ...PORT_DEVICES,
      ],
    },
  },

  // ---- storage folders and encryption ------------------------------------------
  {
    name: "a disk in a second storage folder: its file joined to that folder",
    spec: spec({ disks: [vdisk("vol00001", { pool: "fast", file: "db.qcow2" })] }),
    tail: [
      "-blockdev", bd("/srv/nvme/gh/db.qcow2", "qcow2", "disk0", "none"),
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
    ],
  },
  {
    name: "an encrypted disk: a secret object read from the volume's key file, named on its drive",
    spec: spec({ disks: [vdisk("vol00001"), vdisk("vol00002", { encrypted: true })] }),
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-object", "secret,id=disk1-secret,format=raw,file=/srv/gh/secrets/vol00002.key",
      "-blockdev", bd("/srv/gh/disks/vol00002.qcow2", "qcow2", "disk1", "none", { encrypted: true }),
      "-device", "virtio-blk-pci,drive=disk1,id=disk1,bootindex=2",
    ],
  },
  {
    name: "an encrypted disk whose key folder has a comma: the comma is doubled in the secret's file",
    spec: spec({ disks: [vdisk("vol00001", { encrypted: true })] }),
    layout: { ...TCG, secretsDir: "/srv/a,b/secrets" },
    values: { "-object": ["secret,id=disk0-secret,format=raw,file=/srv/a,,b/secrets/vol00001.key"] },
  },

  // ---- hot-plug ports --------------------------------------------------------------
  {
    name: "q35: four empty PCIe root ports for hot-plug, after every other device",
    spec: spec({ disks: [vdisk("vol00001")], nics: [nic("52:54:00:00:00:01")] }),
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-netdev", "user,id=net0",
      "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01",
      // then SPARE_PORTS, appended by the runner
    ],
  },
  {
    name: "pc: no root ports (its PCI bus hot-plugs through ACPI)",
    spec: spec({ machine: "pc", disks: [vdisk("vol00001")] }),
    values: { "-device": ["pvpanic", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1"] },
  },

  // ---- everything at once --------------------------------------------------------
  {
    name: "every option at once (pc, UEFI, kvm, topology, qxl, localtime, no serial, boot menu, SCSI+IDE, forwards, network first)",
    spec: spec({
      machine: "pc",
      firmware: "uefi",
      vcpus: 4,
      sockets: 2,
      threads: 1,
      memoryMiB: 2048,
      display: "qxl",
      rtc: "localtime",
      serial: false,
      bootMenu: true,
      bootOrder: ["network", "cdrom", "disk"],
      disks: [scsidisk("vol00001", { cache: "writeback", readOnly: true }), idedisk("vol00002")],
      cdroms: [cd("a.iso")],
      nics: [nic("52:54:00:00:00:01", "e1000", [{ protocol: "tcp", hostPort: 2222, guestPort: 22 }])],
    }),
    layout: KVM,
    exact: [
      "-name", "guest=web1,debug-threads=on",
      "-machine", "pc,accel=kvm",
      "-cpu", "host",
      "-smp", "4,sockets=2,cores=2,threads=1",
      "-m", "2048",
      "-nodefaults",
      "-no-user-config",
      "-sandbox", SANDBOX,
      "-msg", "timestamp=on",
      "-pidfile", "/srv/gh/state/abcd1234/qemu.pid",
      "-qmp", "unix:/srv/gh/state/abcd1234/qmp.sock,server=on,wait=off",
      "-display", "none",
      "-vga", "qxl",
      "-vnc", "unix:/srv/gh/state/abcd1234/vnc.sock,password=on",
      "-rtc", "base=localtime",
      "-boot", "strict=on,menu=on,splash-time=10000",
      "-device", "pvpanic",
      "-action", "panic=pause",
      "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "-drive", "if=pflash,format=raw,unit=1,file=/srv/gh/state/abcd1234/efivars.fd",
      "-device", "virtio-scsi-pci,id=scsi0",
      "-blockdev", bd("/srv/gh/disks/vol00001.qcow2", "qcow2", "disk0", "writeback", { readOnly: true }),
      "-device", "scsi-hd,drive=disk0,id=disk0,bus=scsi0.0,bootindex=3",
      "-blockdev", bd("/srv/gh/disks/vol00002.raw", "raw", "disk1", "none"),
      "-device", "ide-hd,drive=disk1,id=disk1,bus=ide.0,unit=0,bootindex=4",
      "-drive", "file=/srv/gh/isos/a.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.0,unit=1,bootindex=2",
      "-netdev", "user,id=net0,hostfwd=tcp::2222-:22",
      "-device", "e1000,netdev=net0,mac=52:54:00:00:00:01,bootindex=1",
    ],
    absent: ["-chardev", "-serial"],
  },
];

describe("buildQemuArgs: table", () => {
  for (const c of CASES) {
    test(c.name, () => {
      const args = buildQemuArgs(c.spec, c.layout ?? TCG);
      if (c.exact) assert.deepEqual(args, c.exact);
      if (c.tail) {
        assert.deepEqual(args.slice(0, BASE_TCG.length), BASE_TCG, "the fixed part");
        assert.deepEqual(args.slice(BASE_TCG.length), [...c.tail, ...SPARE_PORTS], "the device part, then the q35 guest's spare hot-plug ports");
      }
      for (const run of c.runs ?? []) assertRun(args, run);
      for (const flag of c.absent ?? []) assert.ok(!args.includes(flag), `unexpected ${flag}`);
      for (const [flag, expected] of Object.entries(c.values ?? {})) {
        assert.deepEqual(valuesOf(args, flag), expected, `the values of ${flag}`);
      }
      // Every flag is its own element, followed by its value (never "-m 512" in one string).
      for (const a of args) assert.ok(!/^-\S+\s/.test(a), `flag and value glued together: ${JSON.stringify(a)}`);
    });
  }
});

describe("buildQemuArgs: disks as nodes built from the records, never from an image's header", () => {
  const nodeOf = (s: GuestSpec) => JSON.parse(valuesOf(buildQemuArgs(s, TCG), "-blockdev")[0]!) as Record<string, unknown>;

  test("a qcow2 disk of its own, written out: backing null, so QEMU opens no backing file its header may name", () => {
    assert.deepEqual(valuesOf(buildQemuArgs(spec({ disks: [vdisk("vol00001")] }), TCG), "-blockdev"), [
      '{"driver":"qcow2","read-only":false,"discard":"unmap","cache":{"direct":true,"no-flush":false},' +
        '"file":{"driver":"file","filename":"/srv/gh/disks/vol00001.qcow2","read-only":false,"discard":"unmap","cache":{"direct":true,"no-flush":false}},' +
        '"node-name":"disk0","backing":null}',
    ]);
  });

  test("a linked clone: its bases as the spec records them, nearest first, read-only, the last with backing null", () => {
    const clone = vdisk("vol00001", {
      backing: [
        { pool: "default", file: "template.qcow2", format: "qcow2" },
        { pool: "fast", file: "golden.raw", format: "raw" },
      ],
    });
    const node = nodeOf(spec({ disks: [clone] }));
    const base = node.backing as Record<string, unknown>;
    assert.equal((base.file as Record<string, unknown>).filename, "/srv/gh/disks/template.qcow2");
    assert.deepEqual([base.driver, base["read-only"], (base.file as Record<string, unknown>)["read-only"]], ["qcow2", true, true]);
    const bottom = base.backing as Record<string, unknown>;
    assert.deepEqual(bottom, {
      driver: "raw",
      "read-only": true,
      cache: { direct: true, "no-flush": false },
      file: { driver: "file", filename: "/srv/nvme/gh/golden.raw", "read-only": true, cache: { direct: true, "no-flush": false } },
    }, "a raw base takes no backing option at all");
  });

  test("a disk in another format reaches no guest: vmdk, vdi and vpc are refused with what to do", () => {
    for (const format of ["vmdk", "vdi", "vpc"] as const) {
      assert.throws(() => buildQemuArgs(spec({ disks: [vdisk("vol00001", { format, file: `vol00001.${format}` })] }), TCG), invalidInput(`vol00001.${format} is a ${format} image`, "Convert it to qcow2"));
      assert.throws(() => hotplugCommands(vdisk("vol00001", { format }), TCG, "disk1", null), invalidInput("qcow2 and raw disks only"));
    }
  });

  test("a raw disk cannot sit on a base image", () => {
    assert.throws(() => buildQemuArgs(spec({ disks: [vdisk("vol00001", { format: "raw", backing: [{ pool: "default", file: "b.qcow2", format: "qcow2" }] })] }), TCG), invalidInput("cannot sit on a base image"));
  });

  test("every qcow2 node, at every level, says what its backing is", () => {
    const args = buildQemuArgs(spec({ disks: [vdisk("vol00001"), vdisk("vol00003", { backing: [{ pool: "default", file: "t.qcow2", format: "qcow2" }] }), idedisk("vol00002")] }), TCG);
    for (const json of valuesOf(args, "-blockdev")) {
      for (let n: Record<string, unknown> | null = JSON.parse(json) as Record<string, unknown>; n; n = (n.backing ?? null) as Record<string, unknown> | null) {
        if (n.driver === "qcow2") assert.ok(Object.hasOwn(n, "backing"), `a qcow2 node without a backing option: ${json}`);
      }
    }
  });
});

describe("buildQemuArgs: the firmware on the serial console", () => {
  const machineOf = (s: GuestSpec) => valuesOf(buildQemuArgs(s, TCG), "-machine")[0];
  test("SeaBIOS writes to the serial port when the guest has one (graphics=off), for both machine types", () => {
    assert.equal(machineOf(spec({ serial: true })), "q35,accel=tcg,graphics=off");
    assert.equal(machineOf(spec({ machine: "pc", serial: true })), "pc,accel=tcg,graphics=off");
  });
  test("not without a serial port, and not under UEFI (OVMF writes to it by itself)", () => {
    assert.equal(machineOf(spec({ serial: false })), "q35,accel=tcg");
    assert.equal(machineOf(spec({ firmware: "uefi", serial: true })), "q35,accel=tcg");
  });
});

describe("buildQemuArgs: IDE limits per machine", () => {
  test("q35 has 6 IDE slots and pc has 4", () => {
    assert.equal(ideSlots("q35"), 6);
    assert.equal(ideSlots("pc"), 4);
    for (const machine of ["q35", "pc"] as const) {
      assert.equal(ideSlots(machine), IDE_SLOT_COUNT[machine], "the builder's slots match the domain's count the validation uses");
    }
  });

  const ideDisks = (n: number) => Array.from({ length: n }, (_, i) => idedisk(`vol0000${i}`));
  const cds = (n: number) => Array.from({ length: n }, (_, i) => cd(`c${i}.iso`));

  test("pc: 4 IDE devices are fine, in ide.0/ide.1 units 0 and 1", () => {
    const args = buildQemuArgs(spec({ machine: "pc", disks: ideDisks(1), cdroms: cds(3) }), TCG);
    const slots = valuesOf(args, "-device").filter((d) => d !== "pvpanic").map((d) => /bus=ide\.\d,unit=\d/.exec(d)?.[0]);
    assert.deepEqual(slots, ["bus=ide.0,unit=0", "bus=ide.0,unit=1", "bus=ide.1,unit=0", "bus=ide.1,unit=1"]);
  });

  test("q35: 6 IDE devices are fine, ide.0 .. ide.5 without units", () => {
    const args = buildQemuArgs(spec({ disks: ideDisks(2), cdroms: cds(4) }), TCG);
    const devices = valuesOf(args, "-device").filter((d) => !d.startsWith("pcie-root-port") && d !== "pvpanic");
    assert.deepEqual(
      devices.map((d) => /bus=ide\.\d/.exec(d)?.[0]),
      ["bus=ide.0", "bus=ide.1", "bus=ide.2", "bus=ide.3", "bus=ide.4", "bus=ide.5"],
    );
    assert.ok(devices.every((d) => !d.includes("unit=")), "q35's AHCI ports take no unit");
  });

  const tooMany: [string, GuestSpec, string][] = [
    ["pc: 5 IDE disks", spec({ machine: "pc", disks: ideDisks(5) }), "pc"],
    ["pc: 5 cdroms", spec({ machine: "pc", cdroms: cds(5) }), "pc"],
    ["pc: 1 IDE disk + 4 cdroms", spec({ machine: "pc", disks: ideDisks(1), cdroms: cds(4) }), "pc"],
    ["pc: 3 IDE disks + 2 cdroms", spec({ machine: "pc", disks: ideDisks(3), cdroms: cds(2) }), "pc"],
    ["q35: 7 IDE disks", spec({ disks: ideDisks(7) }), "q35"],
    ["q35: 7 cdroms", spec({ cdroms: cds(7) }), "q35"],
    ["q35: 4 IDE disks + 3 cdroms", spec({ disks: ideDisks(4), cdroms: cds(3) }), "q35"],
    ["q35: 6 IDE disks + 1 cdrom", spec({ disks: ideDisks(6), cdroms: cds(1) }), "q35"],
  ];
  for (const [name, s, machine] of tooMany) {
    const limit = machine === "pc" ? "4" : "6";
    test(`one IDE device too many throws invalid-input naming the ${machine} limit (${limit}): ${name}`, () => {
      assert.throws(() => buildQemuArgs(s, TCG), invalidInput(`A ${machine} guest`, `at most ${limit} IDE`));
    });
  }

  test("virtio and SCSI disks do not count against the IDE limit (pc)", () => {
    const disks = [...Array.from({ length: 4 }, (_, i) => vdisk(`vol0000${i}`)), ...Array.from({ length: 4 }, (_, i) => scsidisk(`vol0001${i}`))];
    const args = buildQemuArgs(spec({ machine: "pc", disks, cdroms: cds(4) }), TCG);
    // pvpanic + 1 SCSI controller + 8 disks + 4 CD-ROMs
    assert.equal(valuesOf(args, "-device").length, 14);
  });

  test("virtio disks do not count against the IDE limit (q35)", () => {
    const args = buildQemuArgs(spec({ disks: Array.from({ length: 8 }, (_, i) => vdisk(`vol0000${i}`)), cdroms: cds(6) }), TCG);
    // pvpanic + 8 disks + 6 CD-ROMs + 4 spare hot-plug ports
    assert.equal(valuesOf(args, "-device").length, 19);
  });
});

describe("buildQemuArgs: vCPU topology that does not divide", () => {
  const BAD: [number, number, number][] = [
    [6, 4, 1], // 1.5 cores
    [3, 2, 1], // 1.5 cores
    [2, 1, 4], // half a core
    [4, 8, 1], // more sockets than vCPUs
    [8, 3, 2], // 8 / 6
  ];
  for (const [vcpus, sockets, threads] of BAD) {
    test(`${vcpus} vCPUs in ${sockets} socket(s) of ${threads} thread(s) throws invalid-input`, () => {
      assert.throws(() => buildQemuArgs(spec({ vcpus, sockets, threads }), TCG), invalidInput(`${vcpus} vCPUs`));
    });
  }
});

describe("buildQemuArgs: the SCSI controller", () => {
  const controllers = (args: readonly string[]) => valuesOf(args, "-device").filter((d) => d.startsWith("virtio-scsi-pci"));

  test("two SCSI disks: exactly one controller, before any SCSI disk refers to it", () => {
    const args = buildQemuArgs(spec({ disks: [scsidisk("vol00001"), vdisk("vol00002"), scsidisk("vol00003")] }), TCG);
    assert.deepEqual(controllers(args), ["virtio-scsi-pci,id=scsi0"]);
    const controllerAt = args.indexOf("virtio-scsi-pci,id=scsi0");
    const firstScsiDisk = args.findIndex((a) => a.startsWith("scsi-hd,"));
    assert.ok(controllerAt >= 0 && controllerAt < firstScsiDisk, "the controller comes first");
    assert.deepEqual(
      valuesOf(args, "-device").filter((d) => d.startsWith("scsi-hd")),
      ["scsi-hd,drive=disk0,id=disk0,bus=scsi0.0,bootindex=1", "scsi-hd,drive=disk2,id=disk2,bus=scsi0.0,bootindex=3"],
    );
  });

  const WITHOUT: [string, GuestSpec][] = [
    ["no disks", spec()],
    ["virtio disks", spec({ disks: [vdisk("vol00001"), vdisk("vol00002")] })],
    ["IDE disks and CD-ROMs", spec({ disks: [idedisk("vol00001")], cdroms: [cd("a.iso")] })],
    ["pc with IDE", spec({ machine: "pc", disks: [idedisk("vol00001")] })],
  ];
  for (const [name, s] of WITHOUT) {
    test(`no SCSI disk, no controller: ${name}`, () => {
      const args = buildQemuArgs(s, TCG);
      assert.deepEqual(controllers(args), []);
      assert.ok(!args.some((a) => a.includes("scsi")), "nothing mentions SCSI");
    });
  }
});

describe("buildQemuArgs: invariants", () => {
  const everything = spec({
    bootOrder: ["cdrom", "disk"],
    disks: [vdisk("vol00001"), idedisk("vol00002"), scsidisk("vol00003")],
    cdroms: [cd("a.iso")],
    nics: [nic("52:54:00:00:00:01"), nic("52:54:00:00:00:02", "rtl8139")],
  });
  const withUefi = { ...everything, firmware: "uefi", machine: "pc", bootMenu: true, display: "virtio", rtc: "localtime" } satisfies GuestSpec;

  for (const layout of [TCG, KVM]) {
    for (const s of [everything, withUefi]) {
      const label = `${layout.accelerator}, ${s.machine}, ${s.firmware}`;
      test(`VNC is a unix socket only, never a TCP display (${label})`, () => {
        const args = buildQemuArgs(s, layout);
        assert.deepEqual(valuesOf(args, "-vnc"), [`unix:${guestFiles(layout.stateDir).vnc},password=on`]);
        // No other way of asking for a TCP display or a TCP monitor/chardev.
        for (const a of args) {
          assert.ok(!/\btcp:|\budp:|websocket|\bhost=|\bport=|\bto=|^:\d/.test(a), `looks like a network listener: ${a}`);
        }
        for (const flag of ["-spice", "-monitor", "-gdb", "-s", "-daemonize", "-runas"]) {
          assert.ok(!args.includes(flag), `unexpected ${flag}`);
        }
      });

      test(`QMP is a unix socket with server=on,wait=off (${label})`, () => {
        const args = buildQemuArgs(s, layout);
        assert.deepEqual(valuesOf(args, "-qmp"), [`unix:${layout.stateDir}/qmp.sock,server=on,wait=off`]);
      });

      test(`-nodefaults and -sandbox on,... are present (${label})`, () => {
        const args = buildQemuArgs(s, layout);
        assert.ok(args.includes("-nodefaults"));
        assert.ok(args.includes("-no-user-config"));
        const sandbox = valuesOf(args, "-sandbox");
        assert.equal(sandbox.length, 1);
        assert.equal(sandbox[0], SANDBOX);
        for (const opt of ["obsolete=deny", "elevateprivileges=deny", "spawn=deny", "resourcecontrol=deny"]) {
          assert.ok(sandbox[0]!.split(",").includes(opt), `sandbox lacks ${opt}`);
        }
      });

      test(`no argument carries shell syntax: the array is the API (${label})`, () => {
        const args = buildQemuArgs(s, layout);
        args.forEach((a, i) => {
          assert.equal(typeof a, "string");
          assert.ok(a.length > 0, "empty argument");
          // A disk's node is a JSON document QEMU parses; its strings are the same paths and names.
          if (args[i - 1] === "-blockdev") return void assert.equal(typeof JSON.parse(a), "object");
          assert.ok(!/[\s;&|`$<>'"\\(){}*?!#~]/.test(a), `shell metacharacter or whitespace in ${JSON.stringify(a)}`);
        });
        // The binary is not part of the array; the caller spawns it without a shell.
        assert.ok(!args.some((a) => a.includes("qemu-system")));
      });
    }
  }

  test("an isolated card is user-mode networking with restrict=on; forwards into it stay", () => {
    const card = { ...nic("52:54:00:00:00:01", "virtio", [{ protocol: "tcp", hostPort: 22222, guestPort: 22 }]), isolated: true };
    assert.deepEqual(valuesOf(buildQemuArgs(spec({ nics: [card, nic("52:54:00:00:00:02")] }), TCG), "-netdev"), ["user,id=net0,restrict=on,hostfwd=tcp::22222-:22", "user,id=net1"]);
  });

  test("port forwards listen on the host's forward address when it has one", () => {
    const args = buildQemuArgs(spec({ nics: [nic("52:54:00:00:00:01", "virtio", [{ protocol: "tcp", hostPort: 22222, guestPort: 22 }])] }), { ...TCG, forwardAddress: "127.0.0.1" });
    assert.deepEqual(valuesOf(args, "-netdev"), ["user,id=net0,hostfwd=tcp:127.0.0.1:22222-:22"]);
  });

  test("port forwards are the only host listeners besides the unix sockets, and only in -netdev user", () => {
    const args = buildQemuArgs(
      spec({ nics: [nic("52:54:00:00:00:01", "virtio", [{ protocol: "tcp", hostPort: 2222, guestPort: 22 }, { protocol: "udp", hostPort: 6000, guestPort: 6000 }])] }),
      TCG,
    );
    const withHostfwd = args.filter((a) => a.includes("hostfwd="));
    assert.deepEqual(withHostfwd, ["user,id=net0,hostfwd=tcp::2222-:22,hostfwd=udp::6000-:6000"]);
    assert.equal(args[args.indexOf(withHostfwd[0]!) - 1], "-netdev");
  });

  test("the same spec gives the same array (pure), and the spec is not mutated", () => {
    for (const s of [everything, withUefi]) {
      const copy = structuredClone(s);
      const a = buildQemuArgs(s, TCG);
      const b = buildQemuArgs(s, TCG);
      assert.deepEqual(a, b);
      assert.notEqual(a, b);
      assert.deepEqual(s, copy);
    }
  });

  test("vcpus, topology and memory come from the spec", () => {
    const args = buildQemuArgs(spec({ vcpus: 7, memoryMiB: 3072 }), TCG);
    assertRun(args, ["-smp", "7,sockets=1,cores=7,threads=1", "-m", "3072"]);
  });

  const bootIndexes = (args: readonly string[]) =>
    valuesOf(args, "-device")
      .map((d) => /bootindex=(\d+)/.exec(d)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((x, y) => x - y);

  test("every device's bootindex is unique and 1..n without gaps (network left out)", () => {
    assert.deepEqual(bootIndexes(buildQemuArgs(everything, TCG)), [1, 2, 3, 4]);
  });

  test("every device's bootindex is unique and 1..n without gaps (network included)", () => {
    assert.deepEqual(bootIndexes(buildQemuArgs({ ...everything, bootOrder: ["network", "disk", "cdrom"] }, TCG)), [1, 2, 3, 4, 5, 6]);
  });
});

describe("buildQemuArgs: disk files and secrets", () => {
  const HOSTILE: [string, Partial<DiskSpec>][] = [
    ["a parent-folder path", { file: "../../etc/shadow" }],
    ["an absolute path", { file: "/etc/shadow" }],
    ["a path with a folder", { file: "sub/disk.qcow2" }],
    ["the folder itself", { file: "." }],
    ["the parent folder", { file: ".." }],
    ["a hidden file", { file: ".disk.qcow2" }],
  ];
  for (const [name, patch] of HOSTILE) {
    test(`a disk file that is ${name} is refused before any argument is built`, () => {
      assert.throws(() => buildQemuArgs(spec({ disks: [vdisk("vol00001", patch)] }), TCG), invalidInput("is not a file name"));
      assert.throws(() => diskPath(TCG, { pool: "default", file: patch.file! }), invalidInput("is not a file name"));
    });
  }

  test("a storage folder the host does not have is refused (not-found), never guessed", () => {
    for (const pool of ["nope", "__proto__", "constructor", "toString"]) {
      assert.throws(
        () => buildQemuArgs(spec({ disks: [vdisk("vol00001", { pool })] }), TCG),
        (err: unknown) => err instanceof GuesthouseError && err.code === "not-found" && err.message.includes(`"${pool}"`),
      );
    }
  });

  test("the passphrase never reaches the command line: secrets come from files only", () => {
    const args = buildQemuArgs(spec({ disks: [vdisk("vol00001", { encrypted: true }), scsidisk("vol00002", { encrypted: true })] }), TCG);
    assert.deepEqual(valuesOf(args, "-object"), [
      "secret,id=disk0-secret,format=raw,file=/srv/gh/secrets/vol00001.key",
      "secret,id=disk1-secret,format=raw,file=/srv/gh/secrets/vol00002.key",
    ]);
    for (const a of args) assert.ok(!/(^|,)data=/.test(a), `an inline secret: ${a}`);
    // Each secret object comes before the node that names it.
    assert.ok(args.indexOf("secret,id=disk1-secret,format=raw,file=/srv/gh/secrets/vol00002.key") < args.findIndex((a) => a.includes('"key-secret":"disk1-secret"')));
  });
});

describe("buildQemuArgs: hot-plug ports", () => {
  test("hotplugPorts names exactly the ports buildQemuArgs adds", () => {
    assert.deepEqual(hotplugPorts("q35"), ["hotplug0", "hotplug1", "hotplug2", "hotplug3"]);
    assert.deepEqual(hotplugPorts("pc"), []);
    const args = buildQemuArgs(spec(), TCG);
    const ports = valuesOf(args, "-device").filter((d) => d.startsWith("pcie-root-port"));
    assert.deepEqual(ports.map((d) => /^pcie-root-port,id=([^,]+)/.exec(d)?.[1]), hotplugPorts("q35"));
  });

  test("the ports are the very last arguments, so earlier devices keep their PCI addresses", () => {
    const args = buildQemuArgs(spec({ disks: [vdisk("vol00001"), scsidisk("vol00002")], cdroms: [cd("a.iso")], nics: [nic("52:54:00:00:00:01")] }), TCG);
    assert.deepEqual(args.slice(-SPARE_PORTS.length), SPARE_PORTS);
    assert.equal(args.filter((a) => a.startsWith("pcie-root-port")).length, 4);
  });
});

describe("hotplugCommands: a disk plugged into a running guest", () => {
  const LIVE = { pools: TCG.pools, secretsDir: TCG.secretsDir };

  test("virtio on a q35 port: file and qcow2 nodes with the drive's defaults, no backing from the header, the device on the port", () => {
    assert.deepEqual(hotplugCommands(vdisk("vol00001"), LIVE, "disk3", "hotplug0"), {
      secret: null,
      blockdev: {
        driver: "qcow2",
        "node-name": "disk3",
        "read-only": false,
        discard: "unmap",
        cache: { direct: true, "no-flush": false },
        file: { driver: "file", filename: "/srv/gh/disks/vol00001.qcow2", "read-only": false, discard: "unmap", cache: { direct: true, "no-flush": false } },
        backing: null,
      },
      device: { driver: "virtio-blk-pci", id: "disk3", drive: "disk3", bus: "hotplug0", "write-cache": "on" },
    });
  });

  test("virtio on pc: no bus named (the PCI bus takes it)", () => {
    assert.deepEqual(hotplugCommands(vdisk("vol00001"), LIVE, "disk1", null).device, {
      driver: "virtio-blk-pci",
      id: "disk1",
      drive: "disk1",
      "write-cache": "on",
    });
  });

  test("SCSI: onto the guest's controller, whatever port is offered", () => {
    assert.deepEqual(hotplugCommands(scsidisk("vol00001"), LIVE, "disk2", null).device, {
      driver: "scsi-hd",
      id: "disk2",
      drive: "disk2",
      bus: "scsi0.0",
      "write-cache": "on",
    });
  });

  test("encrypted: a secret object read from the key file, named by the qcow2 node's LUKS options", () => {
    const commands = hotplugCommands(vdisk("vol00001", { encrypted: true }), LIVE, "disk4", "hotplug1");
    assert.deepEqual(commands.secret, { "qom-type": "secret", id: "disk4-secret", format: "raw", file: "/srv/gh/secrets/vol00001.key" });
    assert.deepEqual(commands.blockdev.encrypt, { format: "luks", "key-secret": "disk4-secret" });
    assert.ok(!JSON.stringify(commands).includes('"data"'), "never an inline secret");
  });

  test("read-only and raw: both nodes read-only, the raw driver", () => {
    const { blockdev } = hotplugCommands(vdisk("vol00001", { format: "raw", file: "vol00001.raw", readOnly: true }), LIVE, "disk1", null);
    assert.equal(blockdev.driver, "raw");
    assert.equal(blockdev["read-only"], true);
    assert.equal((blockdev.file as Record<string, unknown>)["read-only"], true);
    assert.equal((blockdev.file as Record<string, unknown>).filename, "/srv/gh/disks/vol00001.raw");
  });

  const CACHES: [DiskCache, { direct: boolean; "no-flush": boolean }, "on" | "off"][] = [
    ["none", { direct: true, "no-flush": false }, "on"],
    ["writeback", { direct: false, "no-flush": false }, "on"],
    ["writethrough", { direct: false, "no-flush": false }, "off"],
    ["directsync", { direct: true, "no-flush": false }, "off"],
    ["unsafe", { direct: false, "no-flush": true }, "on"],
  ];
  for (const [mode, cache, writeCache] of CACHES) {
    test(`cache ${mode}: the same meaning as -drive cache=${mode}`, () => {
      const commands = hotplugCommands(vdisk("vol00001", { cache: mode }), LIVE, "disk1", null);
      assert.deepEqual(commands.blockdev.cache, cache);
      assert.deepEqual((commands.blockdev.file as Record<string, unknown>).cache, cache);
      assert.equal(commands.device["write-cache"], writeCache);
    });
  }

  test("IDE cannot be hot-plugged: refused with what to do instead", () => {
    assert.throws(() => hotplugCommands(idedisk("vol00001"), LIVE, "disk1", null), invalidInput("IDE", "virtio or SCSI"));
  });

  test("a hostile file name is refused here too", () => {
    assert.throws(() => hotplugCommands(vdisk("vol00001", { file: "../x.qcow2" }), LIVE, "disk1", null), invalidInput("is not a file name"));
  });
});

describe("guestFiles", () => {
  test("names every file inside the state folder", () => {
    assert.deepEqual(guestFiles("/srv/gh/state/g1"), {
      qmp: "/srv/gh/state/g1/qmp.sock",
      vnc: "/srv/gh/state/g1/vnc.sock",
      serial: "/srv/gh/state/g1/serial.sock",
      serialLog: "/srv/gh/state/g1/serial.log",
      serialLogOld: "/srv/gh/state/g1/serial.log.1",
      pid: "/srv/gh/state/g1/qemu.pid",
      log: "/srv/gh/state/g1/qemu.log",
      efiVars: "/srv/gh/state/g1/efivars.fd",
    });
  });

  test("a trailing slash does not double up", () => {
    assert.equal(guestFiles("/srv/gh/state/g1/").qmp, "/srv/gh/state/g1/qmp.sock");
  });

  test("OVMF's code is Debian's 4M build", () => {
    assert.equal(OVMF_CODE, "/usr/share/OVMF/OVMF_CODE_4M.fd");
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
    const args = buildQemuArgs(
      spec({
        name: "o'dd name; $(x)",
        machine: "pc",
        firmware: "uefi",
        bootMenu: true,
        bootOrder: ["network", "disk"],
        disks: [scsidisk("vol00001", { readOnly: true }), idedisk("vol00002")],
        cdroms: [cd("a.iso")],
        nics: [nic("52:54:00:00:00:01", "e1000", [{ protocol: "tcp", hostPort: 2222, guestPort: 22 }])],
      }),
      TCG,
    );
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${formatCommandLine(args)}`], { encoding: "utf8" });
    assert.deepEqual(out.split("\0").slice(0, -1), args);
  });

  test("the wrapped form puts one option per line and still round-trips through sh", () => {
    const args = buildQemuArgs(spec({ name: "o'dd name", firmware: "uefi", serial: false, disks: [vdisk("vol00001")] }), TCG);
    const wrapped = formatCommandLine(args, { wrap: true });
    const lines = wrapped.split("\n");
    assert.equal(lines.length, args.filter((a) => a.startsWith("-")).length);
    assert.ok(lines.slice(1).every((l) => l.startsWith("  -")), "every continuation line starts with an option");
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${wrapped}`], { encoding: "utf8" });
    assert.deepEqual(out.split("\0").slice(0, -1), args);
  });
});

describe("buildQemuArgs: the optional TLS VNC endpoint (off by default)", () => {
  const TLS: VncTlsLayout = { dir: "/srv/gh/tls", address: "0.0.0.0", display: 7 };
  const UNIX_VNC = "unix:/srv/gh/state/abcd1234/vnc.sock,password=on";
  const CREDS = "tls-creds-x509,id=vnctls,dir=/srv/gh/tls,endpoint=server,verify-peer=off";

  // [name, layout's vncTls, the arguments between the unix -vnc and -rtc, written out]
  const TABLE: Array<[string, VncTlsLayout | null | undefined, string[]]> = [
    ["off: no vncTls in the layout (the default)", undefined, []],
    ["off: vncTls null", null, []],
    [
      "on, every IPv4 interface, display 7 (port 5907)",
      TLS,
      ["-object", CREDS, "-vnc", "0.0.0.0:7,tls-creds=vnctls,password=on,id=vnc-tls"],
    ],
    [
      "on, loopback, display 0 (port 5900)",
      { ...TLS, address: "127.0.0.1", display: 0 },
      ["-object", CREDS, "-vnc", "127.0.0.1:0,tls-creds=vnctls,password=on,id=vnc-tls"],
    ],
    [
      "on, IPv6 wildcard: the address in brackets",
      { ...TLS, address: "::", display: 99 },
      ["-object", CREDS, "-vnc", "[::]:99,tls-creds=vnctls,password=on,id=vnc-tls"],
    ],
    [
      "on, a folder with a comma: QEMU's doubled comma",
      { ...TLS, dir: "/srv/a,b/tls" },
      ["-object", "tls-creds-x509,id=vnctls,dir=/srv/a,,b/tls,endpoint=server,verify-peer=off", "-vnc", "0.0.0.0:7,tls-creds=vnctls,password=on,id=vnc-tls"],
    ],
  ];
  for (const [name, vncTls, expected] of TABLE) {
    test(name, () => {
      const layout: QemuHostLayout = vncTls === undefined ? TCG : { ...TCG, vncTls };
      const args = buildQemuArgs(spec(), layout);
      const at = args.indexOf(UNIX_VNC);
      assert.equal(args[at - 1], "-vnc", "the unix display stays, first, with its one-time password");
      assert.deepEqual(args.slice(at + 1, args.indexOf("-rtc")), expected);
      // Apart from these arguments, the command line is the one without TLS.
      assert.deepEqual([...args.slice(0, at + 1), ...args.slice(at + 1 + expected.length)], buildQemuArgs(spec(), TCG));
      assert.equal(args.some((a) => a.includes("tls-creds")), expected.length > 0);
      assert.equal(vncTlsPortOf(["qemu-system-x86_64", ...args]), vncTls ? 5900 + vncTls.display : null, "the port reads back from the argv");
    });
  }

  test("with TLS, every -vnc asks for a password: none is ever open", () => {
    const args = buildQemuArgs(spec(), { ...TCG, vncTls: TLS });
    const displays = valuesOf(args, "-vnc");
    assert.equal(displays.length, 2);
    for (const d of displays) assert.ok(d.split(",").includes("password=on"), d);
    assert.ok(!args.some((a) => a.includes("verify-peer=on")), "no client certificates are asked for");
  });

  test("a display number that is no port is a bug, refused", () => {
    for (const display of [-1, 1.5, 65536 - 5900]) {
      assert.throws(() => buildQemuArgs(spec(), { ...TCG, vncTls: { ...TLS, display } }), (err: GuesthouseError) => err.code === "internal");
    }
  });

  test("vncTlsPortOf: only a -vnc with the TLS display's id counts", () => {
    assert.equal(vncTlsPortOf(null), null);
    assert.equal(vncTlsPortOf(["-vnc", UNIX_VNC]), null);
    assert.equal(vncTlsPortOf(["-vnc", "127.0.0.1:12,tls-creds=vnctls,password=on,id=vnc-tls"]), 5912);
    assert.equal(vncTlsPortOf(["-vnc", "[::1]:3,tls-creds=vnctls,password=on,id=vnc-tls"]), 5903);
    assert.equal(vncTlsPortOf(["-name", "127.0.0.1:12,tls-creds=vnctls,id=vnc-tls"]), null, "not the value of -vnc");
    assert.equal(vncTlsPortOf(["-vnc", "127.0.0.1:12,tls-creds=vnctls,password=on,id=vnc-tlsx"]), null);
  });
});
