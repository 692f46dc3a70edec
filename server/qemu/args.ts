/**
 * The one place that builds QEMU's command line: a pure function from a guest's
 * spec and the host's layout to an argument array. The agent spawns exactly this
 * array (never through a shell) and the dashboard shows exactly this array.
 *
 * QEMU opens no image, ISO or log by name: each file it needs is opened by the agent
 * and handed over as a descriptor (`-add-fd`, then `/dev/fdset/<set>` where a path
 * would be), so QEMU, running as a user of its own, reaches exactly the files its
 * guest was given. The command line says which file each set is (its `opaque`).
 */
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import { isGuestDiskFormat, type Accelerator, type BackingImage, type DiskCache, type DiskSpec, type GuestSpec, type MachineType, type NicModel } from "../domain/types";

/** The balloon device's id; QMP reaches it at /machine/peripheral/<id>. */
export const BALLOON_ID = "balloon0";

export const QEMU_BINARY = "qemu-system-x86_64";

/** Debian's OVMF (package ovmf): the firmware code, and the template of its variables. */
export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const OVMF_VARS_TEMPLATE = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/**
 * Where IDE devices (disks and CD-ROMs) can go: q35's AHCI controller has six ports
 * (ide.0 … ide.5, one device each); pc's IDE has two buses with two units each.
 */
const IDE_SLOTS: Record<MachineType, string[]> = {
  q35: ["bus=ide.0", "bus=ide.1", "bus=ide.2", "bus=ide.3", "bus=ide.4", "bus=ide.5"],
  pc: ["bus=ide.0,unit=0", "bus=ide.0,unit=1", "bus=ide.1,unit=0", "bus=ide.1,unit=1"],
};

export function ideSlots(machine: MachineType): number {
  return IDE_SLOTS[machine].length;
}

/**
 * Empty PCIe root ports a q35 guest starts with, for disks plugged in while it runs
 * (q35's own bus, pcie.0, cannot hot-plug; libvirt adds spare ports the same way).
 * pc's PCI bus hot-plugs through ACPI and needs none.
 */
export const HOTPLUG_PORTS = 4;

export function hotplugPorts(machine: MachineType): string[] {
  return machine === "q35" ? Array.from({ length: HOTPLUG_PORTS }, (_, i) => `hotplug${i}`) : [];
}

/** The virtio-scsi controller's id; SCSI disks sit on its bus `scsi0.0`. */
export const SCSI_CONTROLLER = "scsi0";

/**
 * A disk's name inside QEMU: its -drive id (or, plugged in live, its node name) and
 * its device's id alike. Disks started with the guest are disk0 … disk<n-1> in spec
 * order; disks plugged in later continue the count.
 */
/** A network card's device id (QMP set_link names it). */
export function nicId(index: number): string {
  return `nic${index}`;
}

export function diskId(index: number): string {
  return `disk${index}`;
}

export const NIC_DEVICES: Record<NicModel, string> = { virtio: "virtio-net-pci", e1000: "e1000", rtl8139: "rtl8139" };

/** Where things live on the host; filled in by the agent, never by the browser. */
export interface QemuHostLayout {
  accelerator: Accelerator;
  /** The guest's own state folder, the agent's (logs, UEFI variables, its screen): QEMU gets descriptors of these files. */
  stateDir: string;
  /**
   * The guest's run folder, QEMU's own while it starts (its sockets are made there and
   * the master key of its secrets is read from there), the agent's once it runs.
   */
  runDir: string;
  /** Storage folders by name; a disk is `<pools[disk.pool]>/<disk.file>`. */
  pools: Record<string, string>;
  /** Where the agent keeps encrypted volumes' passphrases, one 0600 file per volume. */
  secretsDir: string;
  /**
   * Encrypted disks' passphrases as QEMU gets them: each encrypted (AES-256-CBC) with a
   * key made for this start, which QEMU reads from `guestFiles(…).masterKey`; by volume.
   * Needed for a spec with encrypted disks.
   */
  secrets?: Record<string, EncryptedSecret>;
  /** Folder holding ISO images. */
  isoDir: string;
  /** The address guests' port forwards listen on (none given: every IPv4 address, as QEMU does). */
  forwardAddress?: string;
  /**
   * The optional TLS VNC endpoint (GUESTHOUSE_VNC_TLS=on): QEMU's x509 folder, the
   * address to listen on and the guest's VNC display number (its port - 5900).
   * Absent or null: the guest's only display is its unix socket.
   */
  vncTls?: VncTlsLayout | null;
  /**
   * The taps of the NICs on managed networks, by the NIC's position: made by the launcher
   * and joined to the bridge before QEMU runs, handed to it as descriptors.
   */
  taps?: Record<number, { tap: string; bridge: string; vlan?: number; inMbit?: number }>;
}

/**
 * A tap the launcher opens for QEMU: the device, the bridge it joins, QEMU's fd for it,
 * and (a bridged network's VLAN-filtering bridge) the VLAN it is the untagged port of.
 */
export interface PassedTap {
  tap: string;
  bridge: string;
  vlan?: number;
  /** What reaches the guest is shaped to this (open-taps.py: a tbf queue on the tap). */
  inMbit?: number;
  fd: number;
}

/** A passphrase encrypted with the start's master key: base64 of the ciphertext and of its IV. */
export interface EncryptedSecret {
  data: string;
  iv: string;
}

/** How the agent opens a file it hands to QEMU. */
export type FileAccess = "rw" | "ro" | "append";

/** One descriptor of a launch: the child's fd `3 + index` is `path`, opened so. */
export interface PassedDescriptor {
  path: string;
  /** "rw" files are passed twice, once of each access mode (QEMU takes the one whose mode it asks for). */
  mode: "read-write" | "read-only" | "append";
  set: number;
}

/** The fd set of the guest's screen: the file `screendump` writes (guestFiles(…).screen). */
export const SCREEN_FDSET = 0;
/** The first child descriptor that is a passed file (after stdin, stdout, stderr). */
export const FIRST_PASSED_FD = 3;

/**
 * The files one launch (or one hot-plug) hands to QEMU, each an fd set of its own:
 * `open` names a file as QEMU will open it ("/dev/fdset/<set>"); a file named twice
 * keeps its set. Sets are numbered from `firstSet`; the screen has SCREEN_FDSET.
 */
export class FdSets {
  private readonly byPath = new Map<string, { set: number; access: FileAccess }>();
  /** Every set `open` named, in order (a file named again shows again): what a part of a command line uses. */
  private readonly named: number[] = [];
  private nextSet: number;

  constructor(firstSet = 1) {
    this.nextSet = firstSet;
  }

  open(file: string, access: FileAccess, set?: number): string {
    const known = this.byPath.get(file);
    if (known) {
      if (known.access !== access) throw new GuesthouseError("internal", `${file} is handed to QEMU both ${known.access} and ${access}.`);
      this.named.push(known.set);
      return `/dev/fdset/${known.set}`;
    }
    const chosen = set ?? this.nextSet++;
    this.byPath.set(file, { set: chosen, access });
    this.named.push(chosen);
    return `/dev/fdset/${chosen}`;
  }

  /** The sets `build` names (each once), with what it returns: a disk's sets, shared ones included. */
  using<T>(build: () => T): { result: T; sets: number[] } {
    const from = this.named.length;
    const result = build();
    return { result, sets: [...new Set(this.named.slice(from))] };
  }

  /** The sets made, in order (a hot-plug removes them again when its disk goes). */
  get sets(): number[] {
    return [...this.byPath.values()].map((f) => f.set);
  }

  /** The set after the last one made: where the next launch step's sets start. */
  get next(): number {
    return this.nextSet;
  }

  /** Every descriptor to open, in order: a read-write file as two (read-write, then read-only). */
  descriptors(): PassedDescriptor[] {
    const list: PassedDescriptor[] = [];
    for (const [path, { set, access }] of this.byPath) {
      if (access === "rw") list.push({ path, mode: "read-write", set }, { path, mode: "read-only", set });
      else list.push({ path, mode: access === "ro" ? "read-only" : "append", set });
    }
    return list;
  }

  /** `-add-fd` for each descriptor, as child fd FIRST_PASSED_FD + its index; `opaque` says which file it is. */
  addFdArgs(): string[] {
    return this.descriptors().flatMap((d, i) => ["-add-fd", `fd=${FIRST_PASSED_FD + i},set=${d.set},opaque=${optValue(`${d.mode}:${d.path}`)}`]);
  }
}

export interface VncTlsLayout {
  /** Holds ca-cert.pem, server-cert.pem and server-key.pem (QEMU's names). */
  dir: string;
  /** An IP address; IPv6 is written in brackets on the command line. */
  address: string;
  /** The VNC display number: QEMU listens on port VNC_BASE_PORT + display. */
  display: number;
}

/** QEMU's VNC display N listens on TCP port 5900 + N. */
export const VNC_BASE_PORT = 5900;
/** The id of the tls-creds-x509 object the TLS display uses. */
export const VNC_TLS_CREDS_ID = "vnctls";
/** The id of the TLS VNC display: QMP's set_password and expire_password name it as `display`. */
export const VNC_TLS_DISPLAY_ID = "vnc-tls";

/**
 * The TLS VNC display's two arguments: the x509 credentials (server side, no client
 * certificates asked for: the one-time VNC password is the way in) and a second
 * `-vnc` on TCP that uses them. With x509 credentials and password=on, QEMU offers
 * only VeNCrypt with the x509vnc sub-type (TLS, then VNC authentication); nobody gets
 * in until the agent sets this display's password over QMP.
 */
export function vncTlsArgs(tls: VncTlsLayout): string[] {
  if (!Number.isInteger(tls.display) || tls.display < 0 || tls.display > 65535 - VNC_BASE_PORT) {
    throw new GuesthouseError("internal", `${tls.display} is not a VNC display number.`);
  }
  const host = tls.address.includes(":") ? `[${tls.address}]` : tls.address;
  return [
    "-object", `tls-creds-x509,id=${VNC_TLS_CREDS_ID},dir=${optValue(tls.dir)},endpoint=server,verify-peer=off`,
    "-vnc", `${host}:${tls.display},tls-creds=${VNC_TLS_CREDS_ID},password=on,id=${VNC_TLS_DISPLAY_ID}`,
  ];
}

/** The TCP port of the TLS VNC display a command line asks for, or null (read back from argv.json on adoption). */
export function vncTlsPortOf(argv: readonly string[] | null): number | null {
  const list = argv ?? [];
  for (let i = 1; i < list.length; i++) {
    if (list[i - 1] !== "-vnc") continue;
    const match = /^(?:\[[^\]]*\]|[^,:[\]]*):(\d+),tls-creds=/.exec(list[i]!);
    if (match && list[i]!.split(",").includes(`id=${VNC_TLS_DISPLAY_ID}`)) return VNC_BASE_PORT + Number(match[1]);
  }
  return null;
}

/**
 * A guest's files: QEMU's sockets (and the master key it reads at start) in its run
 * folder, everything else in the agent's state folder, handed to QEMU as descriptors.
 */
export function guestFiles(stateDir: string, runDir: string) {
  return {
    qmp: path.join(runDir, "qmp.sock"),
    /** A second QMP monitor, for the helper that hands QEMU descriptors of disks plugged in later. */
    qmpFds: path.join(runDir, "qmp-fds.sock"),
    vnc: path.join(runDir, "vnc.sock"),
    serial: path.join(runDir, "serial.sock"),
    /** The key this start's secrets are encrypted with; removed once QEMU has read it. */
    masterKey: path.join(runDir, "master.key"),
    serialLog: path.join(stateDir, "serial.log"),
    /** The serial log's previous part, once it was rotated (see server/agent/serial.ts). */
    serialLogOld: path.join(stateDir, "serial.log.1"),
    /** QEMU's pid, written by the agent. */
    pid: path.join(stateDir, "qemu.pid"),
    log: path.join(stateDir, "qemu.log"),
    /** UEFI variables (boot entries); kept across starts, made from OVMF's template. */
    efiVars: path.join(stateDir, "efivars.fd"),
    /** What QMP `screendump` writes (into SCREEN_FDSET), for the guest list's thumbnails. */
    screen: path.join(stateDir, "screen.ppm"),
  };
}

export type GuestFiles = ReturnType<typeof guestFiles>;

/** QEMU option values separate keys with commas; a literal comma is written twice. */
export function optValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/**
 * A disk's file: its name joined to its storage folder. The spec was validated (a
 * file name is never a path); this refuses anything else once more, so no spec can
 * make QEMU open a file outside the storage folders.
 */
export function diskPath(layout: Pick<QemuHostLayout, "pools">, disk: { pool: string; file: string }): string {
  const folder = Object.hasOwn(layout.pools, disk.pool) ? layout.pools[disk.pool] : undefined;
  if (!folder) throw new GuesthouseError("not-found", `This host has no storage folder named "${disk.pool}".`);
  if (disk.file !== path.basename(disk.file) || disk.file.startsWith(".")) {
    throw new GuesthouseError("invalid-input", `"${disk.file}" is not a file name.`);
  }
  return path.join(folder, disk.file);
}

/** The file holding an encrypted volume's passphrase (the agent's; QEMU gets it encrypted, or over QMP). */
export function secretPath(layout: Pick<QemuHostLayout, "secretsDir">, volume: string): string {
  return path.join(layout.secretsDir, `${volume}.key`);
}

export function isoPath(layout: QemuHostLayout, iso: string): string {
  return path.join(layout.isoDir, iso);
}

/** The vCPU model: the host's own CPU under KVM; under TCG every feature QEMU emulates. */
export function cpuModel(accelerator: Accelerator): string {
  return accelerator === "kvm" ? "host" : "max";
}

/** The I/O port of QEMU's isa-debug-exit device in the accelerator probe: a write of v makes QEMU exit with (v << 1) | 1. */
export const PROBE_EXIT_PORT = 0xf4;

/**
 * The accelerator probe's QEMU (server/agent/kvm-probe.ts): the machine and vCPU a
 * guest gets under KVM, SeaBIOS, and nothing but the test guest's boot sector on a
 * read-only disk (handed over as child fd FIRST_PASSED_FD, as guests' disks are), its
 * serial port on stdout, and the exit device it ends with.
 */
export function kvmProbeArgs(bootImage: string): string[] {
  const files = new FdSets();
  const disk = files.open(bootImage, "ro");
  return [
    "-machine", "q35,accel=kvm",
    "-cpu", cpuModel("kvm"),
    "-m", "32",
    "-nodefaults",
    "-no-user-config",
    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-display", "none",
    // A triple fault ends QEMU instead of starting the test over.
    "-no-reboot",
    "-chardev", "stdio,id=probe,signal=off",
    "-serial", "chardev:probe",
    "-device", `isa-debug-exit,iobase=0x${PROBE_EXIT_PORT.toString(16)},iosize=0x04`,
    ...files.addFdArgs(),
    "-drive", `file=${disk},format=raw,if=virtio,readonly=on`,
  ];
}

/** What the agent runs for one guest: the arguments (without the binary) and the files it opens for them, in fd order. */
export interface QemuLaunch {
  args: string[];
  descriptors: PassedDescriptor[];
  /** The set after the launch's last: a disk plugged in later starts there. */
  nextFdSet: number;
  /** The fd sets of each disk, by volume (removed when the disk is unplugged). */
  diskFdSets: Record<string, number[]>;
  /** The taps of NICs on managed networks, after the descriptors in fd order. */
  taps: PassedTap[];
}

/** The id of the secret holding the start's master key; every passphrase's secret names it as its `keyid`. */
export const MASTER_SECRET_ID = "gh-master";

/** Builds the full argument array (without the binary) for one guest. */
export function buildQemuArgs(spec: GuestSpec, layout: QemuHostLayout): string[] {
  return buildQemuLaunch(spec, layout).args;
}

/** The argument array and the descriptors it refers to, for one guest. */
export function buildQemuLaunch(spec: GuestSpec, layout: QemuHostLayout): QemuLaunch {
  const files = guestFiles(layout.stateDir, layout.runDir);
  const passed = new FdSets();
  // Opened first, so its set is the same on every command line (the screenshots name it).
  passed.open(files.screen, "append", SCREEN_FDSET);
  const cores = spec.vcpus / (spec.sockets * spec.threads);
  if (!Number.isInteger(cores) || cores < 1) {
    throw new GuesthouseError("invalid-input", `${spec.vcpus} vCPUs cannot be split into ${spec.sockets} socket(s) of ${spec.threads} thread(s) per core.`);
  }
  const args: string[] = [
    "-name", `guest=${optValue(spec.name)},debug-threads=on`,
    // graphics=off: SeaBIOS also writes to the serial port (and reads keys from it), so the
    // serial console shows the firmware's messages, the boot menu and the boot order taken.
    // OVMF does that by itself.
    "-machine", `${spec.machine},accel=${layout.accelerator}${spec.serial && spec.firmware === "bios" ? ",graphics=off" : ""}`,
    "-cpu", cpuModel(layout.accelerator),
    "-smp", `${spec.vcpus},sockets=${spec.sockets},cores=${cores},threads=${spec.threads}`,
    "-m", String(spec.memoryMiB),
    "-nodefaults",
    "-no-user-config",
    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-msg", "timestamp=on",
    // Stopped before the first instruction: the agent takes the run folder back from QEMU
    // (so QEMU can swap none of its sockets) and then lets the guest run.
    "-S",
    "-qmp", `unix:${optValue(files.qmp)},server=on,wait=off`,
    "-qmp", `unix:${optValue(files.qmpFds)},server=on,wait=off`,
    "-display", "none",
    "-vga", spec.display,
    // password=on: nobody gets in until the agent sets a one-time password over QMP
    // (set_password), which it does for each console session.
    "-vnc", `unix:${optValue(files.vnc)},password=on`,
    // Optional: a second display on TCP behind TLS, for native viewers (off by default).
    ...(layout.vncTls ? vncTlsArgs(layout.vncTls) : []),
    "-rtc", `base=${spec.rtc}`,
    "-boot", spec.bootMenu ? "strict=on,menu=on,splash-time=10000" : "strict=on",
    // A guest kernel that panics says so through the pvpanic device; QEMU then keeps it
    // paused (state guest-panicked) with the panic on its screen, instead of powering off.
    "-device", "pvpanic",
    "-action", "panic=pause",
  ];
  if (spec.firmware === "uefi") {
    args.push(
      "-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${optValue(OVMF_CODE)}`,
      "-drive", `if=pflash,format=raw,unit=1,file=${passed.open(files.efiVars, "rw")}`,
    );
  }
  if (spec.serial) {
    args.push(
      "-chardev", `socket,id=serial0,path=${optValue(files.serial)},server=on,wait=off,logfile=${passed.open(files.serialLog, "append")},logappend=on`,
      "-serial", "chardev:serial0",
    );
  }

  // Boot order: a bootindex on each device, kinds in the chosen order; with strict=on
  // the firmware tries nothing else.
  let nextBootIndex = 1;
  const bootIndexes: Record<string, number[]> = { disk: [], cdrom: [], network: [] };
  const counts = { disk: spec.disks.length, cdrom: spec.cdroms.length, network: spec.nics.length };
  for (const kind of spec.bootOrder) {
    for (let i = 0; i < counts[kind]; i++) bootIndexes[kind]!.push(nextBootIndex++);
  }
  const bootIndex = (kind: string, i: number) => {
    const index = bootIndexes[kind]![i];
    return index === undefined ? "" : `,bootindex=${index}`;
  };

  const slots = IDE_SLOTS[spec.machine];
  let nextIdeSlot = 0;
  const takeIdeSlot = () => {
    const slot = slots[nextIdeSlot++];
    if (!slot) {
      throw new GuesthouseError(
        "invalid-input",
        `A ${spec.machine} guest can have at most ${slots.length} IDE disks and CD-ROMs together. Put more disks on virtio or SCSI.`,
      );
    }
    return slot;
  };

  if (spec.disks.some((d) => d.bus === "scsi")) args.push("-device", `virtio-scsi-pci,id=${SCSI_CONTROLLER}`);
  // Encrypted disks' passphrases arrive encrypted with a key made for this start, which
  // QEMU reads from its run folder: the command line (which anyone on the host can
  // read) carries ciphertext only, and no passphrase is in a file QEMU may open.
  if (spec.disks.some((d) => d.encrypted)) args.push("-object", `secret,id=${MASTER_SECRET_ID},format=raw,file=${optValue(files.masterKey)}`);
  const diskFdSets: Record<string, number[]> = {};
  spec.disks.forEach((disk, i) => {
    const id = diskId(i);
    if (disk.readOnly && disk.bus === "ide") {
      throw new GuesthouseError("invalid-input", "QEMU cannot attach a read-only disk to IDE. Put read-only disks on virtio or SCSI.");
    }
    if (disk.encrypted) {
      const secret = layout.secrets?.[disk.volume];
      if (!secret) throw new GuesthouseError("internal", `The passphrase of ${disk.file} was not prepared for QEMU.`);
      args.push("-object", `secret,id=${id}-secret,format=base64,keyid=${MASTER_SECRET_ID},iv=${secret.iv},data=${secret.data}`);
    }
    const { result: node, sets } = passed.using(() => diskBlockdev(disk, layout, id, passed));
    args.push("-blockdev", JSON.stringify(node));
    // Every set the disk's images are in, a base it shares with another disk included.
    diskFdSets[disk.volume] = sets;
    // The device has an id (the node's) so that it can be unplugged while the guest runs.
    // A node-named drive shows the guest a write cache unless told not to.
    const writeCache = CACHE_MODES[disk.cache].writeCache ? "" : ",write-cache=off";
    const device =
      disk.bus === "virtio"
        ? `virtio-blk-pci,drive=${id},id=${id}`
        : disk.bus === "scsi"
          ? `scsi-hd,drive=${id},id=${id},bus=${SCSI_CONTROLLER}.0`
          : `ide-hd,drive=${id},id=${id},${takeIdeSlot()}`;
    args.push("-device", `${device}${writeCache}${bootIndex("disk", i)}`);
  });

  spec.cdroms.forEach((cdrom, i) => {
    const id = `cd${i}`;
    args.push(
      "-drive",
      `file=${passed.open(isoPath(layout, cdrom.iso), "ro")},format=raw,if=none,id=${id},media=cdrom,readonly=on`,
      "-device",
      `ide-cd,drive=${id},${takeIdeSlot()}${bootIndex("cdrom", i)}`,
    );
  });

  // Taps come after every file's descriptor (no NIC names a file): fds 3 + files + n.
  const fileCount = passed.descriptors().length;
  const taps: PassedTap[] = [];
  spec.nics.forEach((nic, i) => {
    const id = `net${i}`;
    if (nic.mode === "managed") {
      const tap = layout.taps?.[i];
      if (!tap) throw new GuesthouseError("internal", `Network card ${i + 1}'s tap on network ${nic.network} was not made.`);
      const fd = FIRST_PASSED_FD + fileCount + taps.length;
      taps.push({ ...tap, fd });
      args.push("-netdev", `tap,id=${id},fd=${fd}`);
    } else {
      const forwards = nic.forwards.map((f) => `,hostfwd=${f.protocol}:${layout.forwardAddress ?? ""}:${f.hostPort}-:${f.guestPort}`).join("");
      args.push("-netdev", `user,id=${id}${nic.isolated ? ",restrict=on" : ""}${forwards}`);
    }
    // The device has an id (nicId), so its link can be set up or down while the guest runs.
    args.push("-device", `${NIC_DEVICES[nic.model]},netdev=${id},id=${nicId(i)},mac=${nic.mac}${bootIndex("network", i)}`);
  });

  // A balloon the agent never inflates: its driver in the guest reports the guest's own
  // view of its memory for the metrics (server/agent/metrics/). After every other device,
  // so each keeps the PCI address it had before the balloon existed (the ports below are
  // empty slots); deflate-on-oom: should anything ever inflate it, the guest's need wins.
  args.push("-device", `virtio-balloon-pci,id=${BALLOON_ID},deflate-on-oom=on`);

  // Last, so every device above keeps the PCI address it had before the ports existed
  // (a guest's interface names and disk paths follow those addresses).
  hotplugPorts(spec.machine).forEach((port, i) => {
    args.push("-device", `pcie-root-port,id=${port},chassis=${i + 1}`);
  });

  // The descriptors come first on the command line: QEMU must know the sets before a
  // -blockdev or -drive opens one.
  const descriptors = passed.descriptors();
  if (descriptors.length !== fileCount) throw new GuesthouseError("internal", "A file was named for QEMU after the taps' descriptors were counted.");
  return { args: [...passed.addFdArgs(), ...args], descriptors, nextFdSet: passed.next, diskFdSets, taps };
}

/**
 * How each cache mode of `-drive cache=` is spelled for blockdev-add and the device,
 * as QEMU's own documentation of -drive defines them: O_DIRECT (`direct`), flushes
 * ignored (`no-flush`), and whether the guest sees a volatile write cache.
 */
const CACHE_MODES: Record<DiskCache, { direct: boolean; noFlush: boolean; writeCache: boolean }> = {
  none: { direct: true, noFlush: false, writeCache: true },
  writeback: { direct: false, noFlush: false, writeCache: true },
  writethrough: { direct: false, noFlush: false, writeCache: false },
  directsync: { direct: true, noFlush: false, writeCache: false },
  unsafe: { direct: false, noFlush: true, writeCache: true },
};

/** Neither IDE nor AHCI can take a disk while the machine runs (QEMU refuses; so do real boards). */
export function assertHotpluggable(disk: Pick<DiskSpec, "bus">): void {
  if (disk.bus === "ide") {
    throw new GuesthouseError("invalid-input", "IDE disks cannot be plugged into a running guest. Attach the disk on virtio or SCSI, or add it while the guest is stopped.");
  }
}

/**
 * A guest disk as QEMU's block graph, built from the agent's records alone: the image's
 * format node named `id` over its file, and for a linked clone its bases (as the
 * dashboard recorded them) as read-only nodes below it, the last with `backing: null`.
 * QEMU is never left to open a file that an image's header names: a qcow2's backing
 * file (and a VMDK's parent: only qcow2 and raw reach a guest). `-blockdev` at start
 * (as JSON) and `blockdev-add` for a hot-plug take this same object.
 */
export function diskBlockdev(disk: DiskSpec, layout: Pick<QemuHostLayout, "pools">, id: string, files: FdSets): Record<string, unknown> {
  for (const image of [disk, ...disk.backing]) {
    if (!isGuestDiskFormat(image.format)) {
      throw new GuesthouseError("invalid-input", `${image.file} is a ${image.format} image; guests use qcow2 and raw disks only. Convert it to qcow2 on its disk page.`);
    }
  }
  if (disk.format === "raw" && disk.backing.length > 0) throw new GuesthouseError("invalid-input", `${disk.file} is raw, which cannot sit on a base image.`);
  const mode = CACHE_MODES[disk.cache];
  const cache = { direct: mode.direct, "no-flush": mode.noFlush };
  const node = (image: { pool: string; file: string; format: string }, readOnly: boolean) => ({
    driver: image.format,
    "read-only": readOnly,
    ...(readOnly ? {} : { discard: "unmap" }),
    cache,
    file: { driver: "file", filename: files.open(diskPath(layout, image), readOnly ? "ro" : "rw"), "read-only": readOnly, ...(readOnly ? {} : { discard: "unmap" }), cache },
  });
  // Built from the bottom up: each base is the backing of the one above it.
  let backing: Record<string, unknown> | null = null;
  for (const base of [...disk.backing].reverse() as BackingImage[]) {
    backing = { ...node(base, true), ...(base.format === "qcow2" ? { backing } : {}) };
  }
  return {
    ...node(disk, disk.readOnly),
    "node-name": id,
    ...(disk.format === "qcow2" ? { backing } : {}),
    ...(disk.encrypted ? { encrypt: { format: "luks", "key-secret": `${id}-secret` } } : {}),
  };
}

/** The QMP commands (name and arguments) that plug one disk into a running guest, in order. */
export interface HotplugCommands {
  /** object-add of the passphrase's secret (encrypted disks only), as data over QMP. */
  secret: Record<string, unknown> | null;
  blockdev: Record<string, unknown>;
  device: Record<string, unknown>;
}

/**
 * The live counterpart of a disk's -blockdev and -device: a pure function like
 * buildQemuArgs, so the unit tests pin it down. `id` names the format node and the
 * device (see diskId); `port` is a free hot-plug root port on q35 (null on pc, and
 * for SCSI disks, which go onto the guest's controller). The images are named as
 * fd sets in `files` (the agent hands QEMU their descriptors first); an encrypted
 * disk's `passphrase` goes to QEMU as the secret's data, over QMP only.
 */
export function hotplugCommands(
  disk: DiskSpec,
  layout: Pick<QemuHostLayout, "pools">,
  id: string,
  port: string | null,
  files: FdSets,
  passphrase: Buffer | null,
): HotplugCommands {
  assertHotpluggable(disk);
  if (disk.encrypted && !passphrase) throw new GuesthouseError("internal", `The passphrase of ${disk.file} was not read.`);
  const cache = CACHE_MODES[disk.cache];
  return {
    secret: disk.encrypted ? { "qom-type": "secret", id: `${id}-secret`, format: "base64", data: passphrase!.toString("base64") } : null,
    blockdev: diskBlockdev(disk, layout, id, files),
    device: {
      driver: disk.bus === "virtio" ? "virtio-blk-pci" : "scsi-hd",
      id,
      drive: id,
      ...(disk.bus === "scsi" ? { bus: `${SCSI_CONTROLLER}.0` } : port ? { bus: port } : {}),
      "write-cache": cache.writeCache ? "on" : "off",
    },
  };
}
