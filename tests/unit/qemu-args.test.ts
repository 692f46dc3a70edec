/**
 * Table-driven tests of the one function that builds QEMU's command line.
 * Every expectation is written out by hand: the exact array, or exact runs of it.
 * QEMU opens no file of a guest by name: each is an fd set (`-add-fd`, first on the
 * command line) and is named `/dev/fdset/<set>` where its path used to be.
 */
import { execFileSync } from "node:child_process";
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { IDE_SLOT_COUNT } from "../../server/domain/types";
import {
  buildQemuArgs,
  buildQemuLaunch,
  diskPath,
  FdSets,
  guestFiles,
  hotplugCommands,
  hotplugPorts,
  ideSlots,
  OVMF_CODE,
  SCREEN_FDSET,
  vncTlsPortOf,
  type EncryptedSecret,
  type QemuHostLayout,
  type VncTlsLayout,
} from "../../server/qemu/args";
import { formatCommandLine } from "../../server/qemu/format";
import { GuesthouseError } from "../../server/domain/errors";
import type { CdromSpec, DiskBus, DiskCache, DiskSpec, GuestSpec, ManagedNicSpec, NicModel, PortForward, UserNicSpec } from "../../server/domain/types";

const TCG: QemuHostLayout = {
  accelerator: "tcg",
  stateDir: "/srv/gh/state/abcd1234",
  runDir: "/srv/gh/run/abcd1234",
  pools: { default: "/srv/gh/disks", fast: "/srv/nvme/gh" },
  secretsDir: "/srv/gh/secrets",
  isoDir: "/srv/gh/isos",
};
const KVM: QemuHostLayout = { ...TCG, accelerator: "kvm" };

/** Encrypted volumes' passphrases as the agent prepares them: ciphertext and IV under the start's master key (made-up base64). */
const SECRETS: Record<string, EncryptedSecret> = {
  vol00001: { iv: "AAECAwQFBgcICQoLDA0ODw==", data: "q83vASNFZ4mrze8BI0VniQ==" },
  vol00002: { iv: "EBESExQVFhcYGRobHB0eHw==", data: "ESIzRFVmd4iZqrvM3e7/AA==" },
};
/** The TCG layout for guests with encrypted disks. */
const TCG_SECRETS: QemuHostLayout = { ...TCG, secrets: SECRETS };

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
const nic = (mac: string, model: NicModel = "virtio", forwards: PortForward[] = []): UserNicSpec => ({ mac, model, mode: "user", isolated: false, forwards });

/** The base guest's descriptors: its screen (always set 0, fd 3) and its serial log (set 1, fd 4), both appended to. */
const SCREEN_FD = "fd=3,set=0,opaque=append:/srv/gh/state/abcd1234/screen.ppm";
const SERIAL_LOG_FD = "fd=4,set=1,opaque=append:/srv/gh/state/abcd1234/serial.log";
const BASE_FDS: readonly string[] = [SCREEN_FD, SERIAL_LOG_FD];
/** vol00001.qcow2 as the first disk after the base guest's files: set 2, read-write (fd 5) and read-only (fd 6). */
const VOL1_FDS: readonly string[] = [
  "fd=5,set=2,opaque=read-write:/srv/gh/disks/vol00001.qcow2",
  "fd=6,set=2,opaque=read-only:/srv/gh/disks/vol00001.qcow2",
];

/** The whole command line of a guest with no devices on the TCG layout, written out by hand. */
const BASE_TCG: readonly string[] = [
  "-add-fd", "fd=3,set=0,opaque=append:/srv/gh/state/abcd1234/screen.ppm",
  "-add-fd", "fd=4,set=1,opaque=append:/srv/gh/state/abcd1234/serial.log",
  "-name", "guest=web1,debug-threads=on",
  "-machine", "q35,accel=tcg,graphics=off",
  "-cpu", "max",
  "-smp", "2,sockets=1,cores=2,threads=1",
  "-m", "512",
  "-nodefaults",
  "-no-user-config",
  "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
  "-msg", "timestamp=on",
  "-S",
  "-qmp", "unix:/srv/gh/run/abcd1234/qmp.sock,server=on,wait=off",
  "-qmp", "unix:/srv/gh/run/abcd1234/qmp-fds.sock,server=on,wait=off",
  "-display", "none",
  "-vga", "std",
  "-vnc", "unix:/srv/gh/run/abcd1234/vnc.sock,password=on",
  "-rtc", "base=utc",
  "-boot", "strict=on",
  "-device", "pvpanic",
  "-action", "panic=pause",
  "-chardev",
  "socket,id=serial0,path=/srv/gh/run/abcd1234/serial.sock,server=on,wait=off,logfile=/dev/fdset/1,logappend=on",
  "-serial", "chardev:serial0",
];
/** BASE_TCG after its two -add-fd: what every guest's command line has between its descriptors and its devices. */
const BASE_BODY: readonly string[] = BASE_TCG.slice(4);

/** The balloon every guest gets, then the empty hot-plug root ports every q35 guest gets, last on its command line. */
const PORT_DEVICES: readonly string[] = [
  "virtio-balloon-pci,id=balloon0,deflate-on-oom=on",
  "pcie-root-port,id=hotplug0,chassis=1",
  "pcie-root-port,id=hotplug1,chassis=2",
  "pcie-root-port,id=hotplug2,chassis=3",
  "pcie-root-port,id=hotplug3,chassis=4",
];
/** What every guest's command line ends with: the balloon (memory statistics), then a q35 guest's spare hot-plug ports. */
const BALLOON_DEVICE = "virtio-balloon-pci,id=balloon0,deflate-on-oom=on";
const BALLOON: readonly string[] = ["-device", BALLOON_DEVICE];
const SPARE_PORTS: readonly string[] = [
  ...BALLOON,
  "-device", "pcie-root-port,id=hotplug0,chassis=1",
  "-device", "pcie-root-port,id=hotplug1,chassis=2",
  "-device", "pcie-root-port,id=hotplug2,chassis=3",
  "-device", "pcie-root-port,id=hotplug3,chassis=4",
];

/**
 * A disk's -blockdev as the builder must write it: its format node (named `id`) over its
 * file node, which opens fd set `set` (never the image's path), cache and discard on
 * both, `backing: null` for a qcow2 of its own.
 */
function bd(set: number, format: "qcow2" | "raw", id: string, cacheMode: DiskCache, opts: { readOnly?: boolean; encrypted?: boolean } = {}): string {
  const modes: Record<DiskCache, [boolean, boolean]> = { none: [true, false], writeback: [false, false], writethrough: [false, false], directsync: [true, false], unsafe: [false, true] };
  const [direct, noFlush] = modes[cacheMode];
  const readOnly = opts.readOnly ?? false;
  const cache = `"cache":{"direct":${direct},"no-flush":${noFlush}}`;
  const discard = readOnly ? "" : `"discard":"unmap",`;
  const fileNode = `{"driver":"file","filename":"/dev/fdset/${set}","read-only":${readOnly},${discard}${cache}}`;
  const backing = format === "qcow2" ? `,"backing":null` : "";
  const encrypt = opts.encrypted ? `,"encrypt":{"format":"luks","key-secret":"${id}-secret"}` : "";
  return `{"driver":"${format}","read-only":${readOnly},${discard}${cache},"file":${fileNode},"node-name":"${id}"${backing}${encrypt}}`;
}

/** vol00001.qcow2 as disk0 in set 2: the first disk of a guest with serial on and BIOS. */
const BLOCKDEV = {
  vol1: bd(2, "qcow2", "disk0", "none"),
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
  /**
   * Exact arguments after the fixed base (device part), when the base is BASE_TCG; the
   * spare ports (q35) follow them. Before the base come `-add-fd` of `fds`.
   */
  tail?: readonly string[];
  /** Exact values of every -add-fd, in order (for a tail case, BASE_FDS unless given): the array's first arguments. */
  fds?: readonly string[];
  /** Exact runs that must appear somewhere. */
  runs?: readonly (readonly string[])[];
  /** Flags that must not appear at all. */
  absent?: readonly string[];
  /** Exact values of one flag, all occurrences in order. */
  values?: Readonly<Record<string, readonly string[]>>;
}

const SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";
const SERIAL_CHARDEV =
  "socket,id=serial0,path=/srv/gh/run/abcd1234/serial.sock,server=on,wait=off,logfile=/dev/fdset/1,logappend=on";
const QMP = "unix:/srv/gh/run/abcd1234/qmp.sock,server=on,wait=off";
const QMP_FDS = "unix:/srv/gh/run/abcd1234/qmp-fds.sock,server=on,wait=off";
const VNC = "unix:/srv/gh/run/abcd1234/vnc.sock,password=on";

/** One virtio disk, one CD-ROM and one NIC, with the bootindex suffix of each written in. */
function oneOfEach(diskBoot: string, cdBoot: string, nicBoot: string): string[] {
  return [
    "-blockdev", BLOCKDEV.vol1,
    "-device", `virtio-blk-pci,drive=disk0,id=disk0${diskBoot}`,
    "-drive", "file=/dev/fdset/3,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
    "-device", `ide-cd,drive=cd0,bus=ide.0${cdBoot}`,
    "-netdev", "user,id=net0",
    "-device", `virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01${nicBoot}`,
  ];
}
const ONE_OF_EACH = { disks: [vdisk("vol00001")], cdroms: [cd("a.iso")], nics: [nic("52:54:00:00:00:01")] };
/** The descriptors of ONE_OF_EACH: the base's, the disk (set 2) and the ISO (set 3). */
const ONE_OF_EACH_FDS: readonly string[] = [...BASE_FDS, ...VOL1_FDS, "fd=7,set=3,opaque=read-only:/srv/gh/isos/a.iso"];

const CASES: Case[] = [
  {
    name: "no disk, no cdrom, no nic: just the base (its screen and serial log its only files)",
    spec: spec(),
    exact: [...BASE_TCG, ...SPARE_PORTS],
  },
  {
    name: "one virtio disk",
    spec: spec({ disks: [vdisk("vol00001")] }),
    fds: [...BASE_FDS, ...VOL1_FDS],
    tail: ["-blockdev", BLOCKDEV.vol1, "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1"],
  },
  {
    name: "one IDE disk takes ide.0 (q35)",
    spec: spec({ disks: [idedisk("vol00002")] }),
    fds: [...BASE_FDS, "fd=5,set=2,opaque=read-write:/srv/gh/disks/vol00002.raw", "fd=6,set=2,opaque=read-only:/srv/gh/disks/vol00002.raw"],
    tail: [
      "-blockdev", bd(2, "raw", "disk0", "none"),
      "-device", "ide-hd,drive=disk0,id=disk0,bus=ide.0,bootindex=1",
    ],
  },
  {
    name: "disk + cdrom, bootOrder disk,cdrom: the disk gets bootindex 1",
    spec: spec({ bootOrder: ["disk", "cdrom"], disks: [vdisk("vol00001")], cdroms: [cd("a.iso")] }),
    fds: ONE_OF_EACH_FDS,
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-drive", "file=/dev/fdset/3,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=2",
    ],
  },
  {
    name: "disk + cdrom, bootOrder cdrom,disk: the cdrom gets bootindex 1",
    spec: spec({ bootOrder: ["cdrom", "disk"], disks: [vdisk("vol00001")], cdroms: [cd("a.iso")] }),
    fds: ONE_OF_EACH_FDS,
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=2",
      "-drive", "file=/dev/fdset/3,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
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
    fds: [
      ...BASE_FDS,
      ...VOL1_FDS,
      "fd=7,set=3,opaque=read-write:/srv/gh/disks/vol00002.raw",
      "fd=8,set=3,opaque=read-only:/srv/gh/disks/vol00002.raw",
      "fd=9,set=4,opaque=read-write:/srv/gh/disks/vol00003.qcow2",
      "fd=10,set=4,opaque=read-only:/srv/gh/disks/vol00003.qcow2",
      "fd=11,set=5,opaque=read-only:/srv/gh/isos/a.iso",
      "fd=12,set=6,opaque=read-only:/srv/gh/isos/b.iso",
    ],
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=3",
      "-blockdev", bd(3, "raw", "disk1", "none"),
      "-device", "ide-hd,drive=disk1,id=disk1,bus=ide.0,bootindex=4",
      "-blockdev", bd(4, "qcow2", "disk2", "none"),
      "-device", "virtio-blk-pci,drive=disk2,id=disk2,bootindex=5",
      "-drive", "file=/dev/fdset/5,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.1,bootindex=1",
      "-drive", "file=/dev/fdset/6,format=raw,if=none,id=cd1,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd1,bus=ide.2,bootindex=2",
    ],
  },
  {
    name: "several disks and cdroms, bootOrder disk,cdrom: disks first",
    spec: spec({ bootOrder: ["disk", "cdrom"], disks: [vdisk("vol00001"), vdisk("vol00003")], cdroms: [cd("a.iso"), cd("b.iso")] }),
    fds: [
      ...BASE_FDS,
      ...VOL1_FDS,
      "fd=7,set=3,opaque=read-write:/srv/gh/disks/vol00003.qcow2",
      "fd=8,set=3,opaque=read-only:/srv/gh/disks/vol00003.qcow2",
      "fd=9,set=4,opaque=read-only:/srv/gh/isos/a.iso",
      "fd=10,set=5,opaque=read-only:/srv/gh/isos/b.iso",
    ],
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-blockdev", bd(3, "qcow2", "disk1", "none"),
      "-device", "virtio-blk-pci,drive=disk1,id=disk1,bootindex=2",
      "-drive", "file=/dev/fdset/4,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=3",
      "-drive", "file=/dev/fdset/5,format=raw,if=none,id=cd1,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd1,bus=ide.1,bootindex=4",
    ],
  },
  {
    name: "several NICs, each with its own netdev and MAC; network not in bootOrder: no bootindex",
    spec: spec({ nics: [nic("52:54:00:00:00:01"), nic("52:54:00:ab:cd:ef")] }),
    tail: [
      "-netdev", "user,id=net0",
      "-device", "virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01",
      "-netdev", "user,id=net1",
      "-device", "virtio-net-pci,netdev=net1,id=nic1,mac=52:54:00:ab:cd:ef",
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
    name: "a comma in a host path is doubled wherever it is an option value: sockets, and each file's -add-fd opaque",
    spec: spec({ firmware: "uefi", disks: [vdisk("vol00001")], cdroms: [cd("x.iso")] }),
    layout: {
      accelerator: "tcg",
      stateDir: "/srv/a,b/state",
      runDir: "/srv/r,un/g",
      pools: { default: "/srv/d,isks" },
      secretsDir: "/srv/s,ecrets",
      isoDir: "/srv/i,so",
    },
    fds: [
      "fd=3,set=0,opaque=append:/srv/a,,b/state/screen.ppm",
      "fd=4,set=1,opaque=read-write:/srv/a,,b/state/efivars.fd",
      "fd=5,set=1,opaque=read-only:/srv/a,,b/state/efivars.fd",
      "fd=6,set=2,opaque=append:/srv/a,,b/state/serial.log",
      "fd=7,set=3,opaque=read-write:/srv/d,,isks/vol00001.qcow2",
      "fd=8,set=3,opaque=read-only:/srv/d,,isks/vol00001.qcow2",
      "fd=9,set=4,opaque=read-only:/srv/i,,so/x.iso",
    ],
    runs: [
      ["-qmp", "unix:/srv/r,,un/g/qmp.sock,server=on,wait=off", "-qmp", "unix:/srv/r,,un/g/qmp-fds.sock,server=on,wait=off"],
      ["-vnc", "unix:/srv/r,,un/g/vnc.sock,password=on"],
      ["-drive", "if=pflash,format=raw,unit=1,file=/dev/fdset/1"],
      ["-chardev", "socket,id=serial0,path=/srv/r,,un/g/serial.sock,server=on,wait=off,logfile=/dev/fdset/2,logappend=on"],
      ["-blockdev", bd(3, "qcow2", "disk0", "none")],
      ["-drive", "file=/dev/fdset/4,format=raw,if=none,id=cd0,media=cdrom,readonly=on"],
    ],
    absent: ["-pidfile"],
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
      "-add-fd", SCREEN_FD,
      "-add-fd", SERIAL_LOG_FD,
      "-name", "guest=web1,debug-threads=on",
      "-machine", "pc,accel=tcg,graphics=off",
      "-cpu", "max",
      "-smp", "2,sockets=1,cores=2,threads=1",
      "-m", "512",
      "-nodefaults",
      "-no-user-config",
      "-sandbox", SANDBOX,
      "-msg", "timestamp=on",
      "-S",
      "-qmp", QMP,
      "-qmp", QMP_FDS,
      "-display", "none",
      "-vga", "std",
      "-vnc", VNC,
      "-rtc", "base=utc",
      "-boot", "strict=on",
      "-device", "pvpanic",
      "-action", "panic=pause",
      "-chardev", SERIAL_CHARDEV,
      "-serial", "chardev:serial0",
      ...BALLOON,
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
        BALLOON_DEVICE,
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
        BALLOON_DEVICE,
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
    name: "UEFI: OVMF code read-only as pflash unit 0, the guest's efivars.fd (fd set 1, read-write) as unit 1",
    spec: spec({ firmware: "uefi" }),
    exact: [
      "-add-fd", "fd=3,set=0,opaque=append:/srv/gh/state/abcd1234/screen.ppm",
      "-add-fd", "fd=4,set=1,opaque=read-write:/srv/gh/state/abcd1234/efivars.fd",
      "-add-fd", "fd=5,set=1,opaque=read-only:/srv/gh/state/abcd1234/efivars.fd",
      "-add-fd", "fd=6,set=2,opaque=append:/srv/gh/state/abcd1234/serial.log",
      "-name", "guest=web1,debug-threads=on",
      "-machine", "q35,accel=tcg",
      "-cpu", "max",
      "-smp", "2,sockets=1,cores=2,threads=1",
      "-m", "512",
      "-nodefaults",
      "-no-user-config",
      "-sandbox", SANDBOX,
      "-msg", "timestamp=on",
      "-S",
      "-qmp", QMP,
      "-qmp", QMP_FDS,
      "-display", "none",
      "-vga", "std",
      "-vnc", VNC,
      "-rtc", "base=utc",
      "-boot", "strict=on",
      "-device", "pvpanic",
      "-action", "panic=pause",
      "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "-drive", "if=pflash,format=raw,unit=1,file=/dev/fdset/1",
      "-chardev", "socket,id=serial0,path=/srv/gh/run/abcd1234/serial.sock,server=on,wait=off,logfile=/dev/fdset/2,logappend=on",
      "-serial", "chardev:serial0",
      ...SPARE_PORTS,
    ],
  },
  {
    name: "UEFI on pc with a disk: the pflash drives, and the disk as a node of its own",
    spec: spec({ machine: "pc", firmware: "uefi", disks: [vdisk("vol00001")] }),
    values: {
      "-add-fd": [
        SCREEN_FD,
        "fd=4,set=1,opaque=read-write:/srv/gh/state/abcd1234/efivars.fd",
        "fd=5,set=1,opaque=read-only:/srv/gh/state/abcd1234/efivars.fd",
        "fd=6,set=2,opaque=append:/srv/gh/state/abcd1234/serial.log",
        "fd=7,set=3,opaque=read-write:/srv/gh/disks/vol00001.qcow2",
        "fd=8,set=3,opaque=read-only:/srv/gh/disks/vol00001.qcow2",
      ],
      "-drive": [
        "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
        "if=pflash,format=raw,unit=1,file=/dev/fdset/1",
      ],
      "-blockdev": [bd(3, "qcow2", "disk0", "none")],
    },
  },
  {
    name: "BIOS: no pflash drive at all, and no variables file handed over",
    spec: spec({ firmware: "bios", disks: [vdisk("vol00001")] }),
    values: { "-drive": [], "-blockdev": [BLOCKDEV.vol1], "-add-fd": [...BASE_FDS, ...VOL1_FDS] },
  },

  // ---- serial --------------------------------------------------------------------
  {
    name: "serial off: neither -chardev nor -serial, and no serial log handed over",
    spec: spec({ serial: false }),
    exact: [
      "-add-fd", "fd=3,set=0,opaque=append:/srv/gh/state/abcd1234/screen.ppm",
      "-name", "guest=web1,debug-threads=on",
      "-machine", "q35,accel=tcg",
      "-cpu", "max",
      "-smp", "2,sockets=1,cores=2,threads=1",
      "-m", "512",
      "-nodefaults",
      "-no-user-config",
      "-sandbox", SANDBOX,
      "-msg", "timestamp=on",
      "-S",
      "-qmp", QMP,
      "-qmp", QMP_FDS,
      "-display", "none",
      "-vga", "std",
      "-vnc", VNC,
      "-rtc", "base=utc",
      "-boot", "strict=on",
      "-device", "pvpanic",
      "-action", "panic=pause",
      ...SPARE_PORTS,
    ],
    absent: ["-chardev", "-serial"],
  },
  {
    name: "serial on: one socket chardev with a log file (fd set 1, appended to), and -serial on it",
    spec: spec({ serial: true }),
    values: { "-chardev": [SERIAL_CHARDEV], "-serial": ["chardev:serial0"], "-add-fd": [SCREEN_FD, SERIAL_LOG_FD] },
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
    fds: [...BASE_FDS, ...VOL1_FDS],
    tail: [
      "-device", "virtio-scsi-pci,id=scsi0",
      "-blockdev", BLOCKDEV.vol1,
      "-device", "scsi-hd,drive=disk0,id=disk0,bus=scsi0.0,bootindex=1",
    ],
  },
  {
    name: "two SCSI disks share ONE controller",
    spec: spec({ disks: [scsidisk("vol00001"), scsidisk("vol00003")] }),
    fds: [
      ...BASE_FDS,
      ...VOL1_FDS,
      "fd=7,set=3,opaque=read-write:/srv/gh/disks/vol00003.qcow2",
      "fd=8,set=3,opaque=read-only:/srv/gh/disks/vol00003.qcow2",
    ],
    tail: [
      "-device", "virtio-scsi-pci,id=scsi0",
      "-blockdev", BLOCKDEV.vol1,
      "-device", "scsi-hd,drive=disk0,id=disk0,bus=scsi0.0,bootindex=1",
      "-blockdev", bd(3, "qcow2", "disk1", "none"),
      "-device", "scsi-hd,drive=disk1,id=disk1,bus=scsi0.0,bootindex=2",
    ],
  },
  {
    name: "virtio, SCSI and IDE disks mixed: one controller first, each disk on its own bus",
    spec: spec({ disks: [vdisk("vol00001"), scsidisk("vol00003"), idedisk("vol00002")] }),
    fds: [
      ...BASE_FDS,
      ...VOL1_FDS,
      "fd=7,set=3,opaque=read-write:/srv/gh/disks/vol00003.qcow2",
      "fd=8,set=3,opaque=read-only:/srv/gh/disks/vol00003.qcow2",
      "fd=9,set=4,opaque=read-write:/srv/gh/disks/vol00002.raw",
      "fd=10,set=4,opaque=read-only:/srv/gh/disks/vol00002.raw",
    ],
    tail: [
      "-device", "virtio-scsi-pci,id=scsi0",
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-blockdev", bd(3, "qcow2", "disk1", "none"),
      "-device", "scsi-hd,drive=disk1,id=disk1,bus=scsi0.0,bootindex=2",
      "-blockdev", bd(4, "raw", "disk2", "none"),
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
      ["none", bd(2, "qcow2", "disk0", "none")],
      ["writeback", bd(2, "qcow2", "disk0", "writeback")],
      ["writethrough", bd(2, "qcow2", "disk0", "writethrough")],
      ["directsync", bd(2, "qcow2", "disk0", "directsync")],
      ["unsafe", bd(2, "qcow2", "disk0", "unsafe")],
    ] as const
  ).map(
    ([cache, drive]): Case => ({
      name: `cache mode ${cache}`,
      spec: spec({ disks: [vdisk("vol00001", { cache: cache as DiskCache })] }),
      fds: [...BASE_FDS, ...VOL1_FDS],
      // Without a volatile write cache (writethrough, directsync) the device says so.
      tail: ["-blockdev", drive, "-device", `virtio-blk-pci,drive=disk0,id=disk0${["writethrough", "directsync"].includes(cache) ? ",write-cache=off" : ""},bootindex=1`],
    }),
  ),
  {
    name: "two disks with different cache modes keep their own",
    spec: spec({ disks: [vdisk("vol00001", { cache: "unsafe" }), idedisk("vol00002", { cache: "writethrough" })] }),
    values: {
      "-blockdev": [
        bd(2, "qcow2", "disk0", "unsafe"),
        bd(3, "raw", "disk1", "writethrough"),
      ],
    },
  },
  {
    name: "a read-only virtio disk: read-only nodes, its image handed over read-only only",
    spec: spec({ disks: [vdisk("vol00001", { readOnly: true })] }),
    fds: [...BASE_FDS, "fd=5,set=2,opaque=read-only:/srv/gh/disks/vol00001.qcow2"],
    tail: [
      "-blockdev", bd(2, "qcow2", "disk0", "none", { readOnly: true }),
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
    ],
  },
  {
    name: "a read-only SCSI disk next to a writable one: only its drive (and its descriptor) is read-only",
    spec: spec({ disks: [scsidisk("vol00001", { readOnly: true, cache: "directsync" }), vdisk("vol00003")] }),
    values: {
      "-blockdev": [
        bd(2, "qcow2", "disk0", "directsync", { readOnly: true }),
        bd(3, "qcow2", "disk1", "none"),
      ],
      "-add-fd": [
        ...BASE_FDS,
        "fd=5,set=2,opaque=read-only:/srv/gh/disks/vol00001.qcow2",
        "fd=6,set=3,opaque=read-write:/srv/gh/disks/vol00003.qcow2",
        "fd=7,set=3,opaque=read-only:/srv/gh/disks/vol00003.qcow2",
      ],
    },
  },

  // ---- NIC models and port forwards ----------------------------------------------
  {
    name: "NIC models: virtio-net-pci, e1000, rtl8139",
    spec: spec({ nics: [nic("52:54:00:00:00:01", "virtio"), nic("52:54:00:00:00:02", "e1000"), nic("52:54:00:00:00:03", "rtl8139")] }),
    tail: [
      "-netdev", "user,id=net0",
      "-device", "virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01",
      "-netdev", "user,id=net1",
      "-device", "e1000,netdev=net1,id=nic1,mac=52:54:00:00:00:02",
      "-netdev", "user,id=net2",
      "-device", "rtl8139,netdev=net2,id=nic2,mac=52:54:00:00:00:03",
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
      "-device", "virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01",
      "-netdev", "user,id=net1,hostfwd=tcp::8080-:80",
      "-device", "e1000,netdev=net1,id=nic1,mac=52:54:00:00:00:02",
    ],
  },

  // ---- boot order ----------------------------------------------------------------
  {
    name: "bootOrder disk,cdrom,network",
    spec: spec({ bootOrder: ["disk", "cdrom", "network"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach(",bootindex=1", ",bootindex=2", ",bootindex=3"),
  },
  {
    name: "bootOrder disk,network,cdrom",
    spec: spec({ bootOrder: ["disk", "network", "cdrom"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach(",bootindex=1", ",bootindex=3", ",bootindex=2"),
  },
  {
    name: "bootOrder cdrom,disk,network",
    spec: spec({ bootOrder: ["cdrom", "disk", "network"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach(",bootindex=2", ",bootindex=1", ",bootindex=3"),
  },
  {
    name: "bootOrder cdrom,network,disk",
    spec: spec({ bootOrder: ["cdrom", "network", "disk"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach(",bootindex=3", ",bootindex=1", ",bootindex=2"),
  },
  {
    name: "bootOrder network,disk,cdrom: the NIC gets bootindex 1",
    spec: spec({ bootOrder: ["network", "disk", "cdrom"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach(",bootindex=2", ",bootindex=3", ",bootindex=1"),
  },
  {
    name: "bootOrder network,cdrom,disk: the NIC gets bootindex 1",
    spec: spec({ bootOrder: ["network", "cdrom", "disk"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach(",bootindex=3", ",bootindex=2", ",bootindex=1"),
  },
  {
    name: "bootOrder cdrom,disk: the NIC, left out, gets no bootindex",
    spec: spec({ bootOrder: ["cdrom", "disk"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach(",bootindex=2", ",bootindex=1", ""),
  },
  {
    name: "bootOrder network,disk: the CD-ROM, left out, gets no bootindex",
    spec: spec({ bootOrder: ["network", "disk"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach(",bootindex=2", "", ",bootindex=1"),
  },
  {
    name: "bootOrder network only: neither disk nor CD-ROM gets a bootindex",
    spec: spec({ bootOrder: ["network"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach("", "", ",bootindex=1"),
  },
  {
    name: "bootOrder cdrom only: neither disk nor NIC gets a bootindex",
    spec: spec({ bootOrder: ["cdrom"], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
    tail: oneOfEach("", ",bootindex=1", ""),
  },
  {
    name: "bootOrder empty: no device gets a bootindex",
    spec: spec({ bootOrder: [], ...ONE_OF_EACH }),
    fds: ONE_OF_EACH_FDS,
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
        "virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01,bootindex=1",
        "e1000,netdev=net1,id=nic1,mac=52:54:00:00:00:02,bootindex=2",
        ...PORT_DEVICES,
      ],
    },
  },

  // ---- storage folders and encryption ------------------------------------------
  {
    name: "a disk in a second storage folder: its file joined to that folder",
    spec: spec({ disks: [vdisk("vol00001", { pool: "fast", file: "db.qcow2" })] }),
    fds: [...BASE_FDS, "fd=5,set=2,opaque=read-write:/srv/nvme/gh/db.qcow2", "fd=6,set=2,opaque=read-only:/srv/nvme/gh/db.qcow2"],
    tail: [
      "-blockdev", bd(2, "qcow2", "disk0", "none"),
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
    ],
  },
  {
    name: "an encrypted disk: the master key's secret from the run folder, then the disk's encrypted passphrase, named on its node",
    spec: spec({ disks: [vdisk("vol00001"), vdisk("vol00002", { encrypted: true })] }),
    layout: TCG_SECRETS,
    fds: [
      ...BASE_FDS,
      ...VOL1_FDS,
      "fd=7,set=3,opaque=read-write:/srv/gh/disks/vol00002.qcow2",
      "fd=8,set=3,opaque=read-only:/srv/gh/disks/vol00002.qcow2",
    ],
    tail: [
      "-object", "secret,id=gh-master,format=raw,file=/srv/gh/run/abcd1234/master.key",
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-object", "secret,id=disk1-secret,format=base64,keyid=gh-master,iv=EBESExQVFhcYGRobHB0eHw==,data=ESIzRFVmd4iZqrvM3e7/AA==",
      "-blockdev", bd(3, "qcow2", "disk1", "none", { encrypted: true }),
      "-device", "virtio-blk-pci,drive=disk1,id=disk1,bootindex=2",
    ],
  },
  {
    name: "an encrypted disk whose run folder has a comma: the comma is doubled in the master key's file",
    spec: spec({ disks: [vdisk("vol00001", { encrypted: true })] }),
    layout: { ...TCG_SECRETS, runDir: "/srv/a,b/run" },
    values: {
      "-object": [
        "secret,id=gh-master,format=raw,file=/srv/a,,b/run/master.key",
        "secret,id=disk0-secret,format=base64,keyid=gh-master,iv=AAECAwQFBgcICQoLDA0ODw==,data=q83vASNFZ4mrze8BI0VniQ==",
      ],
    },
  },

  // ---- hot-plug ports --------------------------------------------------------------
  {
    name: "q35: four empty PCIe root ports for hot-plug, after every other device",
    spec: spec({ disks: [vdisk("vol00001")], nics: [nic("52:54:00:00:00:01")] }),
    fds: [...BASE_FDS, ...VOL1_FDS],
    tail: [
      "-blockdev", BLOCKDEV.vol1,
      "-device", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
      "-netdev", "user,id=net0",
      "-device", "virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01",
      // then SPARE_PORTS, appended by the runner
    ],
  },
  {
    name: "pc: no root ports (its PCI bus hot-plugs through ACPI)",
    spec: spec({ machine: "pc", disks: [vdisk("vol00001")] }),
    values: { "-device": ["pvpanic", "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1", BALLOON_DEVICE] },
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
      "-add-fd", "fd=3,set=0,opaque=append:/srv/gh/state/abcd1234/screen.ppm",
      "-add-fd", "fd=4,set=1,opaque=read-write:/srv/gh/state/abcd1234/efivars.fd",
      "-add-fd", "fd=5,set=1,opaque=read-only:/srv/gh/state/abcd1234/efivars.fd",
      "-add-fd", "fd=6,set=2,opaque=read-only:/srv/gh/disks/vol00001.qcow2",
      "-add-fd", "fd=7,set=3,opaque=read-write:/srv/gh/disks/vol00002.raw",
      "-add-fd", "fd=8,set=3,opaque=read-only:/srv/gh/disks/vol00002.raw",
      "-add-fd", "fd=9,set=4,opaque=read-only:/srv/gh/isos/a.iso",
      "-name", "guest=web1,debug-threads=on",
      "-machine", "pc,accel=kvm",
      "-cpu", "host",
      "-smp", "4,sockets=2,cores=2,threads=1",
      "-m", "2048",
      "-nodefaults",
      "-no-user-config",
      "-sandbox", SANDBOX,
      "-msg", "timestamp=on",
      "-S",
      "-qmp", QMP,
      "-qmp", QMP_FDS,
      "-display", "none",
      "-vga", "qxl",
      "-vnc", VNC,
      "-rtc", "base=localtime",
      "-boot", "strict=on,menu=on,splash-time=10000",
      "-device", "pvpanic",
      "-action", "panic=pause",
      "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "-drive", "if=pflash,format=raw,unit=1,file=/dev/fdset/1",
      "-device", "virtio-scsi-pci,id=scsi0",
      "-blockdev", bd(2, "qcow2", "disk0", "writeback", { readOnly: true }),
      "-device", "scsi-hd,drive=disk0,id=disk0,bus=scsi0.0,bootindex=3",
      "-blockdev", bd(3, "raw", "disk1", "none"),
      "-device", "ide-hd,drive=disk1,id=disk1,bus=ide.0,unit=0,bootindex=4",
      "-drive", "file=/dev/fdset/4,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "-device", "ide-cd,drive=cd0,bus=ide.0,unit=1,bootindex=2",
      "-netdev", "user,id=net0,hostfwd=tcp::2222-:22",
      "-device", "e1000,netdev=net0,id=nic0,mac=52:54:00:00:00:01,bootindex=1",
      ...BALLOON,
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
        const fds = (c.fds ?? BASE_FDS).flatMap((v) => ["-add-fd", v]);
        assert.deepEqual(args.slice(0, fds.length), fds, "the descriptors, first");
        assert.deepEqual(args.slice(fds.length, fds.length + BASE_BODY.length), BASE_BODY, "the fixed part");
        assert.deepEqual(args.slice(fds.length + BASE_BODY.length), [...c.tail, ...SPARE_PORTS], "the device part, then the q35 guest's spare hot-plug ports");
      }
      if (c.fds) {
        assert.deepEqual(valuesOf(args, "-add-fd"), c.fds, "the values of -add-fd");
        assert.deepEqual(args.slice(0, c.fds.length * 2), c.fds.flatMap((v) => ["-add-fd", v]), "every -add-fd comes first");
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
        '"file":{"driver":"file","filename":"/dev/fdset/2","read-only":false,"discard":"unmap","cache":{"direct":true,"no-flush":false}},' +
        '"node-name":"disk0","backing":null}',
    ]);
  });

  test("a linked clone: its bases as the spec records them, nearest first, read-only (handed over read-only), the last with backing null", () => {
    const clone = vdisk("vol00001", {
      backing: [
        { pool: "default", file: "template.qcow2", format: "qcow2" },
        { pool: "fast", file: "golden.raw", format: "raw" },
      ],
    });
    const node = nodeOf(spec({ disks: [clone] }));
    // The nodes are built from the bottom up, so the sets are too: golden 2, template 3, the clone 4.
    assert.equal((node.file as Record<string, unknown>).filename, "/dev/fdset/4");
    const base = node.backing as Record<string, unknown>;
    assert.equal((base.file as Record<string, unknown>).filename, "/dev/fdset/3");
    assert.deepEqual([base.driver, base["read-only"], (base.file as Record<string, unknown>)["read-only"]], ["qcow2", true, true]);
    const bottom = base.backing as Record<string, unknown>;
    assert.deepEqual(bottom, {
      driver: "raw",
      "read-only": true,
      cache: { direct: true, "no-flush": false },
      file: { driver: "file", filename: "/dev/fdset/2", "read-only": true, cache: { direct: true, "no-flush": false } },
    }, "a raw base takes no backing option at all");
    assert.deepEqual(valuesOf(buildQemuArgs(spec({ disks: [clone] }), TCG), "-add-fd"), [
      ...BASE_FDS,
      "fd=5,set=2,opaque=read-only:/srv/nvme/gh/golden.raw",
      "fd=6,set=3,opaque=read-only:/srv/gh/disks/template.qcow2",
      "fd=7,set=4,opaque=read-write:/srv/gh/disks/vol00001.qcow2",
      "fd=8,set=4,opaque=read-only:/srv/gh/disks/vol00001.qcow2",
    ], "the bases read-only only, the clone read-write and read-only");
  });

  test("a disk in another format reaches no guest: vmdk, vdi and vpc are refused with what to do", () => {
    for (const format of ["vmdk", "vdi", "vpc"] as const) {
      assert.throws(() => buildQemuArgs(spec({ disks: [vdisk("vol00001", { format, file: `vol00001.${format}` })] }), TCG), invalidInput(`vol00001.${format} is a ${format} image`, "Convert it to qcow2"));
      assert.throws(() => hotplugCommands(vdisk("vol00001", { format }), TCG, "disk1", null, new FdSets(), null), invalidInput("qcow2 and raw disks only"));
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
    const slots = valuesOf(args, "-device").filter((d) => d !== "pvpanic" && d !== BALLOON_DEVICE).map((d) => /bus=ide\.\d,unit=\d/.exec(d)?.[0]);
    assert.deepEqual(slots, ["bus=ide.0,unit=0", "bus=ide.0,unit=1", "bus=ide.1,unit=0", "bus=ide.1,unit=1"]);
  });

  test("q35: 6 IDE devices are fine, ide.0 .. ide.5 without units", () => {
    const args = buildQemuArgs(spec({ disks: ideDisks(2), cdroms: cds(4) }), TCG);
    const devices = valuesOf(args, "-device").filter((d) => !d.startsWith("pcie-root-port") && d !== "pvpanic" && d !== BALLOON_DEVICE);
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
    // pvpanic + 1 SCSI controller + 8 disks + 4 CD-ROMs + the balloon
    assert.equal(valuesOf(args, "-device").length, 15);
  });

  test("virtio disks do not count against the IDE limit (q35)", () => {
    const args = buildQemuArgs(spec({ disks: Array.from({ length: 8 }, (_, i) => vdisk(`vol0000${i}`)), cdroms: cds(6) }), TCG);
    // pvpanic + 8 disks + 6 CD-ROMs + the balloon + 4 spare hot-plug ports
    assert.equal(valuesOf(args, "-device").length, 20);
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
        assert.deepEqual(valuesOf(args, "-vnc"), [VNC]);
        // No other way of asking for a TCP display or a TCP monitor/chardev.
        for (const a of args) {
          assert.ok(!/\btcp:|\budp:|websocket|\bhost=|\bport=|\bto=|^:\d/.test(a), `looks like a network listener: ${a}`);
        }
        for (const flag of ["-spice", "-monitor", "-gdb", "-s", "-daemonize", "-runas"]) {
          assert.ok(!args.includes(flag), `unexpected ${flag}`);
        }
      });

      test(`QMP is two unix sockets in the run folder (the agent's, then the descriptor helper's), server=on,wait=off (${label})`, () => {
        const args = buildQemuArgs(s, layout);
        assert.deepEqual(valuesOf(args, "-qmp"), [QMP, QMP_FDS]);
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

  test("a card on a managed network is a tap QEMU gets as a descriptor after the files'; a user-mode card beside it stays", () => {
    const managed: ManagedNicSpec = { mac: "52:54:00:00:00:03", model: "virtio", mode: "managed", network: "lab", isolated: false, forwards: [] };
    const launch = buildQemuLaunch(spec({ nics: [nic("52:54:00:00:00:01"), managed] }), { ...TCG, taps: { 1: { tap: "ghtabc", bridge: "gh-lab" } } });
    const fd = 3 + launch.descriptors.length;
    assert.deepEqual(valuesOf(launch.args, "-netdev"), ["user,id=net0", `tap,id=net1,fd=${fd}`]);
    assert.deepEqual(launch.taps, [{ tap: "ghtabc", bridge: "gh-lab", fd }]);
    assert.ok(valuesOf(launch.args, "-device").includes("virtio-net-pci,netdev=net1,id=nic1,mac=52:54:00:00:00:03"));
    assert.throws(() => buildQemuLaunch(spec({ nics: [managed] }), TCG), /tap on network lab was not made/);
  });

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

  test("the passphrase never reaches the command line: only its ciphertext under the start's master key, read from the run folder", () => {
    const args = buildQemuArgs(spec({ disks: [vdisk("vol00001", { encrypted: true }), scsidisk("vol00002", { encrypted: true })] }), TCG_SECRETS);
    assert.deepEqual(valuesOf(args, "-object"), [
      "secret,id=gh-master,format=raw,file=/srv/gh/run/abcd1234/master.key",
      "secret,id=disk0-secret,format=base64,keyid=gh-master,iv=AAECAwQFBgcICQoLDA0ODw==,data=q83vASNFZ4mrze8BI0VniQ==",
      "secret,id=disk1-secret,format=base64,keyid=gh-master,iv=EBESExQVFhcYGRobHB0eHw==,data=ESIzRFVmd4iZqrvM3e7/AA==",
    ]);
    // Every inline secret is encrypted with the master key (none is plain data).
    for (const a of args) {
      if (/(^|,)data=/.test(a)) assert.ok(a.split(",").includes("keyid=gh-master"), `an inline secret not encrypted with the master key: ${a}`);
    }
    // QEMU is never pointed at the passphrases' own files.
    assert.ok(!args.some((a) => a.includes("/srv/gh/secrets")), "the secrets folder is named");
    // Each secret object comes before the node that names it.
    const disk1Secret = args.indexOf("secret,id=disk1-secret,format=base64,keyid=gh-master,iv=EBESExQVFhcYGRobHB0eHw==,data=ESIzRFVmd4iZqrvM3e7/AA==");
    assert.ok(disk1Secret >= 0 && disk1Secret < args.findIndex((a) => a.includes('"key-secret":"disk1-secret"')));
  });

  test("the master key's secret comes once per command line, before the first disk and every disk's secret", () => {
    const args = buildQemuArgs(spec({ disks: [vdisk("vol00003"), vdisk("vol00001", { encrypted: true }), scsidisk("vol00002", { encrypted: true })] }), TCG_SECRETS);
    const master = "secret,id=gh-master,format=raw,file=/srv/gh/run/abcd1234/master.key";
    assert.equal(args.filter((a) => a.startsWith("secret,id=gh-master,")).length, 1, "one master key");
    const at = args.indexOf(master);
    assert.equal(args[at - 1], "-object");
    assert.ok(at < args.indexOf("-blockdev"), "before the first disk, even one that is not encrypted");
    for (const id of ["disk1-secret", "disk2-secret"]) {
      const secret = args.findIndex((a) => a.startsWith(`secret,id=${id},`));
      assert.ok(secret > at, `${id} after the master key`);
    }
  });

  test("no encrypted disk: no master key, no secret at all", () => {
    assert.deepEqual(valuesOf(buildQemuArgs(spec({ disks: [vdisk("vol00001"), vdisk("vol00003")] }), TCG_SECRETS), "-object"), []);
  });

  test("an encrypted disk whose passphrase was not prepared is a bug (internal), refused", () => {
    for (const layout of [TCG, { ...TCG, secrets: { vol00002: SECRETS.vol00002! } }]) {
      assert.throws(
        () => buildQemuArgs(spec({ disks: [vdisk("vol00001", { encrypted: true })] }), layout),
        (err: unknown) => err instanceof GuesthouseError && err.code === "internal" && err.message.includes("vol00001.qcow2"),
      );
    }
  });
});

describe("buildQemuLaunch: every file QEMU gets is a descriptor", () => {
  /** UEFI, serial, a writable and a read-only disk and a CD-ROM: one file of each kind. */
  const ALL_KINDS = spec({ firmware: "uefi", disks: [vdisk("vol00001"), vdisk("vol00003", { readOnly: true })], cdroms: [cd("a.iso")] });
  /** ALL_KINDS's -add-fd, written out: screen, UEFI vars, serial log, the disks in order, the CD-ROM. */
  const ALL_KINDS_FDS = [
    "fd=3,set=0,opaque=append:/srv/gh/state/abcd1234/screen.ppm",
    "fd=4,set=1,opaque=read-write:/srv/gh/state/abcd1234/efivars.fd",
    "fd=5,set=1,opaque=read-only:/srv/gh/state/abcd1234/efivars.fd",
    "fd=6,set=2,opaque=append:/srv/gh/state/abcd1234/serial.log",
    "fd=7,set=3,opaque=read-write:/srv/gh/disks/vol00001.qcow2",
    "fd=8,set=3,opaque=read-only:/srv/gh/disks/vol00001.qcow2",
    "fd=9,set=4,opaque=read-only:/srv/gh/disks/vol00003.qcow2",
    "fd=10,set=5,opaque=read-only:/srv/gh/isos/a.iso",
  ];

  test("-add-fd comes first, before -name: the screen (set 0), UEFI vars, serial log, disks, then CD-ROMs", () => {
    const args = buildQemuArgs(ALL_KINDS, TCG);
    assert.deepEqual(args.slice(0, ALL_KINDS_FDS.length * 2), ALL_KINDS_FDS.flatMap((v) => ["-add-fd", v]));
    assert.equal(args[ALL_KINDS_FDS.length * 2], "-name");
    assert.deepEqual(valuesOf(args, "-add-fd"), ALL_KINDS_FDS, "no -add-fd anywhere else");
    assert.equal(SCREEN_FDSET, 0);
  });

  test("each file is named by its set where its path was", () => {
    const args = buildQemuArgs(ALL_KINDS, TCG);
    assertRun(args, ["-drive", "if=pflash,format=raw,unit=1,file=/dev/fdset/1"]);
    assertRun(args, ["-chardev", "socket,id=serial0,path=/srv/gh/run/abcd1234/serial.sock,server=on,wait=off,logfile=/dev/fdset/2,logappend=on"]);
    assert.deepEqual(valuesOf(args, "-blockdev"), [bd(3, "qcow2", "disk0", "none"), bd(4, "qcow2", "disk1", "none", { readOnly: true })]);
    assertRun(args, ["-drive", "file=/dev/fdset/5,format=raw,if=none,id=cd0,media=cdrom,readonly=on"]);
  });

  test("descriptors: the files to open in -add-fd's order (child fd 3 + i), a read-write file twice, read-write then read-only", () => {
    const launch = buildQemuLaunch(ALL_KINDS, TCG);
    assert.deepEqual(launch.descriptors, [
      { path: "/srv/gh/state/abcd1234/screen.ppm", mode: "append", set: 0 },
      { path: "/srv/gh/state/abcd1234/efivars.fd", mode: "read-write", set: 1 },
      { path: "/srv/gh/state/abcd1234/efivars.fd", mode: "read-only", set: 1 },
      { path: "/srv/gh/state/abcd1234/serial.log", mode: "append", set: 2 },
      { path: "/srv/gh/disks/vol00001.qcow2", mode: "read-write", set: 3 },
      { path: "/srv/gh/disks/vol00001.qcow2", mode: "read-only", set: 3 },
      { path: "/srv/gh/disks/vol00003.qcow2", mode: "read-only", set: 4 },
      { path: "/srv/gh/isos/a.iso", mode: "read-only", set: 5 },
    ]);
    // The descriptor at index i is the -add-fd naming fd 3 + i.
    const addFds = valuesOf(launch.args, "-add-fd");
    assert.equal(addFds.length, launch.descriptors.length);
    launch.descriptors.forEach((d, i) => assert.equal(addFds[i], `fd=${3 + i},set=${d.set},opaque=${d.mode}:${d.path}`));
    assert.deepEqual(launch.args, buildQemuArgs(ALL_KINDS, TCG), "buildQemuArgs is the launch's args");
  });

  test("nextFdSet is the set after the last, diskFdSets each disk's sets by volume", () => {
    const launch = buildQemuLaunch(ALL_KINDS, TCG);
    assert.equal(launch.nextFdSet, 6);
    assert.deepEqual(launch.diskFdSets, { vol00001: [3], vol00003: [4] });
  });

  test("nextFdSet and diskFdSets without disks: after the serial log, or after the screen alone", () => {
    assert.deepEqual([buildQemuLaunch(spec(), TCG).nextFdSet, buildQemuLaunch(spec(), TCG).diskFdSets], [2, {}]);
    const bare = buildQemuLaunch(spec({ serial: false }), TCG);
    assert.equal(bare.nextFdSet, 1, "the screen's set 0 is its own: the count starts at 1");
    assert.deepEqual(bare.descriptors, [{ path: "/srv/gh/state/abcd1234/screen.ppm", mode: "append", set: 0 }]);
  });

  test("diskFdSets of a linked clone: its bases' sets and its own", () => {
    const clone = vdisk("vol00001", { backing: [{ pool: "default", file: "template.qcow2", format: "qcow2" }, { pool: "fast", file: "golden.raw", format: "raw" }] });
    const launch = buildQemuLaunch(spec({ disks: [clone, scsidisk("vol00002")] }), TCG);
    assert.deepEqual(launch.diskFdSets, { vol00001: [2, 3, 4], vol00002: [5] });
    assert.equal(launch.nextFdSet, 6);
  });

  test("a path used twice keeps one set and one descriptor: the same ISO in two drives", () => {
    const args = buildQemuArgs(spec({ cdroms: [cd("a.iso"), cd("a.iso")] }), TCG);
    assert.deepEqual(valuesOf(args, "-add-fd"), [...BASE_FDS, "fd=5,set=2,opaque=read-only:/srv/gh/isos/a.iso"]);
    assert.deepEqual(valuesOf(args, "-drive"), [
      "file=/dev/fdset/2,format=raw,if=none,id=cd0,media=cdrom,readonly=on",
      "file=/dev/fdset/2,format=raw,if=none,id=cd1,media=cdrom,readonly=on",
    ]);
  });

  test("a path used twice keeps one set: two clones of one base share its set, and each disk lists it", () => {
    const base = [{ pool: "default", file: "template.qcow2", format: "qcow2" as const }];
    const launch = buildQemuLaunch(spec({ disks: [vdisk("vol00001", { backing: base }), vdisk("vol00003", { backing: base })] }), TCG);
    assert.deepEqual(valuesOf(launch.args, "-add-fd"), [
      ...BASE_FDS,
      "fd=5,set=2,opaque=read-only:/srv/gh/disks/template.qcow2",
      "fd=6,set=3,opaque=read-write:/srv/gh/disks/vol00001.qcow2",
      "fd=7,set=3,opaque=read-only:/srv/gh/disks/vol00001.qcow2",
      "fd=8,set=4,opaque=read-write:/srv/gh/disks/vol00003.qcow2",
      "fd=9,set=4,opaque=read-only:/srv/gh/disks/vol00003.qcow2",
    ]);
    const nodes = valuesOf(launch.args, "-blockdev").map((j) => JSON.parse(j) as Record<string, Record<string, Record<string, unknown>>>);
    assert.deepEqual(nodes.map((n) => n.backing!.file!.filename), ["/dev/fdset/2", "/dev/fdset/2"]);
    // Both name the base's set: unplugging one must not take it from the other (guest-disks.ts keeps a set another disk lists).
    assert.deepEqual(launch.diskFdSets, { vol00001: [2, 3], vol00003: [2, 4] });
  });

  test("a comma in a file's path is doubled in its -add-fd opaque", () => {
    const args = buildQemuArgs(spec({ serial: false, cdroms: [cd("a,b.iso")] }), { ...TCG, stateDir: "/srv/st,ate" });
    assert.deepEqual(valuesOf(args, "-add-fd"), ["fd=3,set=0,opaque=append:/srv/st,,ate/screen.ppm", "fd=4,set=1,opaque=read-only:/srv/gh/isos/a,,b.iso"]);
  });

  test("one file both written and only read (a disk that is another's base) is a bug (internal), refused", () => {
    const s = spec({ disks: [vdisk("vol00001", { file: "template.qcow2" }), vdisk("vol00003", { backing: [{ pool: "default", file: "template.qcow2", format: "qcow2" }] })] });
    assert.throws(
      () => buildQemuLaunch(s, TCG),
      (err: unknown) => err instanceof GuesthouseError && err.code === "internal" && err.message.includes("/srv/gh/disks/template.qcow2"),
    );
  });

  test("-S right after -msg (the guest starts stopped), the second QMP monitor right after the first, no -pidfile", () => {
    const args = buildQemuArgs(ALL_KINDS, TCG);
    assertRun(args, ["-msg", "timestamp=on", "-S", "-qmp", QMP, "-qmp", QMP_FDS, "-display", "none"]);
    assert.equal(args.filter((a) => a === "-S").length, 1);
    assert.ok(!args.includes("-pidfile"), "QEMU writes no pid file");
  });

  test("no image, ISO, log or variables file is named on the command line except in an -add-fd opaque", () => {
    const clone = vdisk("vol00003", { pool: "fast", backing: [{ pool: "default", file: "template.qcow2", format: "qcow2" }] });
    const s = spec({
      firmware: "uefi",
      disks: [vdisk("vol00001", { encrypted: true }), clone, scsidisk("vol00004", { readOnly: true }), idedisk("vol00002")],
      cdroms: [cd("a.iso"), cd("b.iso")],
    });
    const args = buildQemuArgs(s, TCG_SECRETS);
    const files = [
      "/srv/gh/state/abcd1234/screen.ppm",
      "/srv/gh/state/abcd1234/efivars.fd",
      "/srv/gh/state/abcd1234/serial.log",
      "/srv/gh/disks/vol00001.qcow2",
      "/srv/gh/disks/template.qcow2",
      "/srv/nvme/gh/vol00003.qcow2",
      "/srv/gh/disks/vol00004.qcow2",
      "/srv/gh/disks/vol00002.raw",
      "/srv/gh/isos/a.iso",
      "/srv/gh/isos/b.iso",
    ];
    const opaques = valuesOf(args, "-add-fd").map((v) => /,opaque=(?:read-write|read-only|append):(.*)$/.exec(v)?.[1]);
    for (const f of files) assert.ok(opaques.includes(f), `${f} is handed over`);
    args.forEach((a, i) => {
      // An -add-fd's value names its file in its opaque only.
      const named = args[i - 1] === "-add-fd" ? a.replace(/,opaque=.*$/, "") : a;
      for (const folder of ["/srv/gh/state", "/srv/gh/disks", "/srv/nvme/gh", "/srv/gh/isos", "/srv/gh/secrets"]) {
        assert.ok(!named.includes(folder), `${folder} named outside an opaque: ${a}`);
      }
      for (const f of files) assert.ok(!named.includes(f), `${f} named outside an opaque: ${a}`);
    });
    // Every set the command line opens is one it was given; every set given but the screen's is opened.
    const given = new Set(valuesOf(args, "-add-fd").map((v) => Number(/^fd=\d+,set=(\d+),/.exec(v)![1])));
    const opened = new Set(args.flatMap((a) => [...a.matchAll(/\/dev\/fdset\/(\d+)/g)].map((m) => Number(m[1]))));
    for (const set of opened) assert.ok(given.has(set), `set ${set} is opened but not given`);
    assert.deepEqual([...given].filter((set) => !opened.has(set)), [0], "only the screen's set waits for screendump");
  });
});

describe("FdSets", () => {
  test("sets are numbered from 1 by default, in order of opening; a path named twice keeps its set", () => {
    const files = new FdSets();
    assert.equal(files.open("/srv/gh/isos/a.iso", "ro"), "/dev/fdset/1");
    assert.equal(files.open("/srv/gh/disks/d.qcow2", "rw"), "/dev/fdset/2");
    assert.equal(files.open("/srv/gh/isos/a.iso", "ro"), "/dev/fdset/1");
    assert.deepEqual(files.sets, [1, 2]);
    assert.equal(files.next, 3);
  });

  test("sets start at the number given (a hot-plug continues a launch's count)", () => {
    const files = new FdSets(12);
    assert.equal(files.open("/srv/gh/disks/d.qcow2", "rw"), "/dev/fdset/12");
    assert.equal(files.open("/srv/gh/disks/e.qcow2", "ro"), "/dev/fdset/13");
    assert.equal(files.next, 14);
  });

  test("a set chosen by the caller (the screen's) does not move the count", () => {
    const files = new FdSets();
    assert.equal(files.open("/srv/gh/state/g/screen.ppm", "append", 0), "/dev/fdset/0");
    assert.equal(files.next, 1);
    assert.equal(files.open("/srv/gh/state/g/serial.log", "append"), "/dev/fdset/1");
    assert.deepEqual(files.sets, [0, 1]);
  });

  test("descriptors: a read-write file twice (read-write, then read-only), a read-only or appended one once, in order of opening", () => {
    const files = new FdSets(4);
    files.open("/a/vars.fd", "rw");
    files.open("/a/log", "append");
    files.open("/a/x.iso", "ro");
    files.open("/a/vars.fd", "rw");
    assert.deepEqual(files.descriptors(), [
      { path: "/a/vars.fd", mode: "read-write", set: 4 },
      { path: "/a/vars.fd", mode: "read-only", set: 4 },
      { path: "/a/log", mode: "append", set: 5 },
      { path: "/a/x.iso", mode: "read-only", set: 6 },
    ]);
  });

  test("addFdArgs: one -add-fd per descriptor from child fd 3, its opaque the mode and the path, commas doubled", () => {
    const files = new FdSets(7);
    files.open("/srv/a,b/disk.qcow2", "rw");
    files.open("/srv/i,so/x.iso", "ro");
    assert.deepEqual(files.addFdArgs(), [
      "-add-fd", "fd=3,set=7,opaque=read-write:/srv/a,,b/disk.qcow2",
      "-add-fd", "fd=4,set=7,opaque=read-only:/srv/a,,b/disk.qcow2",
      "-add-fd", "fd=5,set=8,opaque=read-only:/srv/i,,so/x.iso",
    ]);
    assert.deepEqual(new FdSets().addFdArgs(), [], "no file, no -add-fd");
  });

  test("one path opened with two access modes is a bug (internal), refused; its first set stays", () => {
    for (const [first, second] of [["rw", "ro"], ["ro", "rw"], ["append", "rw"], ["ro", "append"]] as const) {
      const files = new FdSets();
      files.open("/srv/gh/disks/d.qcow2", first);
      assert.throws(
        () => files.open("/srv/gh/disks/d.qcow2", second),
        (err: unknown) => err instanceof GuesthouseError && err.code === "internal" && err.message.includes("/srv/gh/disks/d.qcow2"),
        `${first} then ${second}`,
      );
      assert.deepEqual(files.sets, [1]);
      assert.equal(files.next, 2);
    }
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
  const LIVE = { pools: TCG.pools };

  test("virtio on a q35 port: file and qcow2 nodes with the drive's defaults, the image as the given fd set, no backing from the header, the device on the port", () => {
    const files = new FdSets(12);
    assert.deepEqual(hotplugCommands(vdisk("vol00001"), LIVE, "disk3", "hotplug0", files, null), {
      secret: null,
      blockdev: {
        driver: "qcow2",
        "node-name": "disk3",
        "read-only": false,
        discard: "unmap",
        cache: { direct: true, "no-flush": false },
        file: { driver: "file", filename: "/dev/fdset/12", "read-only": false, discard: "unmap", cache: { direct: true, "no-flush": false } },
        backing: null,
      },
      device: { driver: "virtio-blk-pci", id: "disk3", drive: "disk3", bus: "hotplug0", "write-cache": "on" },
    });
    assert.deepEqual(files.sets, [12]);
    assert.equal(files.next, 13);
    assert.deepEqual(files.descriptors(), [
      { path: "/srv/gh/disks/vol00001.qcow2", mode: "read-write", set: 12 },
      { path: "/srv/gh/disks/vol00001.qcow2", mode: "read-only", set: 12 },
    ]);
  });

  test("a linked clone: its bases and the image in sets from the given one (bottom up), the bases read-only", () => {
    const files = new FdSets(12);
    const clone = vdisk("vol00001", {
      backing: [
        { pool: "default", file: "template.qcow2", format: "qcow2" },
        { pool: "fast", file: "golden.raw", format: "raw" },
      ],
    });
    const { blockdev } = hotplugCommands(clone, LIVE, "disk5", "hotplug2", files, null);
    const base = blockdev.backing as Record<string, unknown>;
    const bottom = base.backing as Record<string, unknown>;
    assert.deepEqual(
      [blockdev, base, bottom].map((n) => (n.file as Record<string, unknown>).filename),
      ["/dev/fdset/14", "/dev/fdset/13", "/dev/fdset/12"],
    );
    assert.deepEqual(files.sets, [12, 13, 14]);
    assert.equal(files.next, 15);
    assert.deepEqual(files.descriptors(), [
      { path: "/srv/nvme/gh/golden.raw", mode: "read-only", set: 12 },
      { path: "/srv/gh/disks/template.qcow2", mode: "read-only", set: 13 },
      { path: "/srv/gh/disks/vol00001.qcow2", mode: "read-write", set: 14 },
      { path: "/srv/gh/disks/vol00001.qcow2", mode: "read-only", set: 14 },
    ]);
  });

  test("virtio on pc: no bus named (the PCI bus takes it)", () => {
    assert.deepEqual(hotplugCommands(vdisk("vol00001"), LIVE, "disk1", null, new FdSets(), null).device, {
      driver: "virtio-blk-pci",
      id: "disk1",
      drive: "disk1",
      "write-cache": "on",
    });
  });

  test("SCSI: onto the guest's controller, whatever port is offered", () => {
    assert.deepEqual(hotplugCommands(scsidisk("vol00001"), LIVE, "disk2", null, new FdSets(), null).device, {
      driver: "scsi-hd",
      id: "disk2",
      drive: "disk2",
      bus: "scsi0.0",
      "write-cache": "on",
    });
  });

  test("encrypted: the passphrase as base64 data of a secret object (over QMP), named by the qcow2 node's LUKS options", () => {
    const commands = hotplugCommands(vdisk("vol00001", { encrypted: true }), LIVE, "disk4", "hotplug1", new FdSets(12), Buffer.from("correct horse battery staple"));
    assert.deepEqual(commands.secret, { "qom-type": "secret", id: "disk4-secret", format: "base64", data: "Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ==" });
    assert.deepEqual(commands.blockdev.encrypt, { format: "luks", "key-secret": "disk4-secret" });
    assert.equal((commands.blockdev.file as Record<string, unknown>).filename, "/dev/fdset/12");
    assert.ok(!JSON.stringify(commands).includes("/srv/gh/secrets"), "QEMU is not pointed at the passphrase's file");
  });

  test("encrypted without a passphrase read is a bug (internal), refused before any file is named", () => {
    const files = new FdSets(12);
    assert.throws(
      () => hotplugCommands(vdisk("vol00001", { encrypted: true }), LIVE, "disk4", "hotplug1", files, null),
      (err: unknown) => err instanceof GuesthouseError && err.code === "internal" && err.message.includes("vol00001.qcow2"),
    );
    assert.deepEqual(files.sets, []);
  });

  test("not encrypted: no secret, whatever passphrase is passed", () => {
    assert.equal(hotplugCommands(vdisk("vol00001"), LIVE, "disk4", "hotplug1", new FdSets(), Buffer.from("unused")).secret, null);
  });

  test("read-only and raw: both nodes read-only, the raw driver, the image handed over read-only only", () => {
    const files = new FdSets();
    const { blockdev } = hotplugCommands(vdisk("vol00001", { format: "raw", file: "vol00001.raw", readOnly: true }), LIVE, "disk1", null, files, null);
    assert.equal(blockdev.driver, "raw");
    assert.equal(blockdev["read-only"], true);
    assert.equal((blockdev.file as Record<string, unknown>)["read-only"], true);
    assert.equal((blockdev.file as Record<string, unknown>).filename, "/dev/fdset/1");
    assert.deepEqual(files.descriptors(), [{ path: "/srv/gh/disks/vol00001.raw", mode: "read-only", set: 1 }]);
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
      const commands = hotplugCommands(vdisk("vol00001", { cache: mode }), LIVE, "disk1", null, new FdSets(), null);
      assert.deepEqual(commands.blockdev.cache, cache);
      assert.deepEqual((commands.blockdev.file as Record<string, unknown>).cache, cache);
      assert.equal(commands.device["write-cache"], writeCache);
    });
  }

  test("IDE cannot be hot-plugged: refused with what to do instead", () => {
    assert.throws(() => hotplugCommands(idedisk("vol00001"), LIVE, "disk1", null, new FdSets(), null), invalidInput("IDE", "virtio or SCSI"));
  });

  test("a hostile file name is refused here too, and no fd set is made for it", () => {
    const files = new FdSets(12);
    assert.throws(() => hotplugCommands(vdisk("vol00001", { file: "../x.qcow2" }), LIVE, "disk1", null, files, null), invalidInput("is not a file name"));
    assert.deepEqual(files.sets, []);
    assert.equal(files.next, 12);
  });
});

describe("guestFiles", () => {
  test("names QEMU's sockets and the master key in the run folder, everything else in the state folder", () => {
    assert.deepEqual(guestFiles("/srv/gh/state/g1", "/srv/gh/run/g1"), {
      qmp: "/srv/gh/run/g1/qmp.sock",
      qmpFds: "/srv/gh/run/g1/qmp-fds.sock",
      vnc: "/srv/gh/run/g1/vnc.sock",
      serial: "/srv/gh/run/g1/serial.sock",
      masterKey: "/srv/gh/run/g1/master.key",
      serialLog: "/srv/gh/state/g1/serial.log",
      serialLogOld: "/srv/gh/state/g1/serial.log.1",
      pid: "/srv/gh/state/g1/qemu.pid",
      log: "/srv/gh/state/g1/qemu.log",
      efiVars: "/srv/gh/state/g1/efivars.fd",
      screen: "/srv/gh/state/g1/screen.ppm",
    });
  });

  test("a trailing slash does not double up", () => {
    const files = guestFiles("/srv/gh/state/g1/", "/srv/gh/run/g1/");
    assert.equal(files.qmp, "/srv/gh/run/g1/qmp.sock");
    assert.equal(files.log, "/srv/gh/state/g1/qemu.log");
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
  const UNIX_VNC = "unix:/srv/gh/run/abcd1234/vnc.sock,password=on";
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
