/**
 * The one place that builds QEMU's command line: a pure function from a guest's
 * spec and the host's layout to an argument array. The agent spawns exactly this
 * array (never through a shell) and the dashboard shows exactly this array.
 */
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import type { Accelerator, GuestSpec, MachineType, NicModel } from "../domain/types";

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

const NIC_DEVICES: Record<NicModel, string> = { virtio: "virtio-net-pci", e1000: "e1000", rtl8139: "rtl8139" };

/** Where things live on the host; filled in by the agent, never by the browser. */
export interface QemuHostLayout {
  accelerator: Accelerator;
  /** The guest's own state folder (sockets, pid file, logs). */
  stateDir: string;
  /** Folder holding guest disks as `<volume>.<format>`. */
  disksDir: string;
  /** Folder holding ISO images. */
  isoDir: string;
}

/** The files QEMU creates in a guest's state folder. */
export function guestFiles(stateDir: string) {
  return {
    qmp: path.join(stateDir, "qmp.sock"),
    vnc: path.join(stateDir, "vnc.sock"),
    serial: path.join(stateDir, "serial.sock"),
    serialLog: path.join(stateDir, "serial.log"),
    pid: path.join(stateDir, "qemu.pid"),
    log: path.join(stateDir, "qemu.log"),
    /** UEFI variables (boot entries); kept across starts, made from OVMF's template. */
    efiVars: path.join(stateDir, "efivars.fd"),
  };
}

/** QEMU option values separate keys with commas; a literal comma is written twice. */
export function optValue(value: string): string {
  return value.replaceAll(",", ",,");
}

export function diskPath(layout: QemuHostLayout, volume: string, format: string): string {
  return path.join(layout.disksDir, `${volume}.${format}`);
}

export function isoPath(layout: QemuHostLayout, iso: string): string {
  return path.join(layout.isoDir, iso);
}

/** Builds the full argument array (without the binary) for one guest. */
export function buildQemuArgs(spec: GuestSpec, layout: QemuHostLayout): string[] {
  const files = guestFiles(layout.stateDir);
  const cores = spec.vcpus / (spec.sockets * spec.threads);
  if (!Number.isInteger(cores) || cores < 1) {
    throw new GuesthouseError("invalid-input", `${spec.vcpus} vCPUs cannot be split into ${spec.sockets} socket(s) of ${spec.threads} thread(s) per core.`);
  }
  const args: string[] = [
    "-name", `guest=${optValue(spec.name)},debug-threads=on`,
    "-machine", `${spec.machine},accel=${layout.accelerator}`,
    "-cpu", layout.accelerator === "kvm" ? "host" : "max",
    "-smp", `${spec.vcpus},sockets=${spec.sockets},cores=${cores},threads=${spec.threads}`,
    "-m", String(spec.memoryMiB),
    "-nodefaults",
    "-no-user-config",
    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-msg", "timestamp=on",
    "-pidfile", files.pid,
    "-qmp", `unix:${optValue(files.qmp)},server=on,wait=off`,
    "-display", "none",
    "-vga", spec.display,
    "-vnc", `unix:${optValue(files.vnc)}`,
    "-rtc", `base=${spec.rtc}`,
    "-boot", spec.bootMenu ? "strict=on,menu=on,splash-time=10000" : "strict=on",
  ];
  if (spec.firmware === "uefi") {
    args.push(
      "-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${optValue(OVMF_CODE)}`,
      "-drive", `if=pflash,format=raw,unit=1,file=${optValue(files.efiVars)}`,
    );
  }
  if (spec.serial) {
    args.push(
      "-chardev", `socket,id=serial0,path=${optValue(files.serial)},server=on,wait=off,logfile=${optValue(files.serialLog)},logappend=on`,
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

  if (spec.disks.some((d) => d.bus === "scsi")) args.push("-device", "virtio-scsi-pci,id=scsi0");
  spec.disks.forEach((disk, i) => {
    const id = `disk${i}`;
    if (disk.readOnly && disk.bus === "ide") {
      throw new GuesthouseError("invalid-input", "QEMU cannot attach a read-only disk to IDE. Put read-only disks on virtio or SCSI.");
    }
    const readOnly = disk.readOnly ? ",readonly=on" : "";
    args.push(
      "-drive",
      `file=${optValue(diskPath(layout, disk.volume, disk.format))},format=${disk.format},if=none,id=${id},cache=${disk.cache},discard=unmap${readOnly}`,
    );
    const device =
      disk.bus === "virtio"
        ? `virtio-blk-pci,drive=${id}`
        : disk.bus === "scsi"
          ? `scsi-hd,drive=${id},bus=scsi0.0`
          : `ide-hd,drive=${id},${takeIdeSlot()}`;
    args.push("-device", `${device}${bootIndex("disk", i)}`);
  });

  spec.cdroms.forEach((cdrom, i) => {
    const id = `cd${i}`;
    args.push(
      "-drive",
      `file=${optValue(isoPath(layout, cdrom.iso))},format=raw,if=none,id=${id},media=cdrom,readonly=on`,
      "-device",
      `ide-cd,drive=${id},${takeIdeSlot()}${bootIndex("cdrom", i)}`,
    );
  });

  spec.nics.forEach((nic, i) => {
    const id = `net${i}`;
    const forwards = nic.forwards.map((f) => `,hostfwd=${f.protocol}::${f.hostPort}-:${f.guestPort}`).join("");
    args.push("-netdev", `user,id=${id}${forwards}`, "-device", `${NIC_DEVICES[nic.model]},netdev=${id},mac=${nic.mac}${bootIndex("network", i)}`);
  });

  return args;
}
