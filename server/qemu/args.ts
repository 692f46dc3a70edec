/**
 * The one place that builds QEMU's command line: a pure function from a guest's
 * spec and the host's layout to an argument array. The agent spawns exactly this
 * array (never through a shell) and the dashboard shows exactly this array.
 */
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import type { Accelerator, GuestSpec } from "../domain/types";

export const QEMU_BINARY = "qemu-system-x86_64";

/** q35's AHCI controller has six ports, ide.0 .. ide.5, one device each. */
export const IDE_BUSES = 6;

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
  const args: string[] = [
    "-name", `guest=${optValue(spec.name)},debug-threads=on`,
    "-machine", `q35,accel=${layout.accelerator}`,
    "-cpu", layout.accelerator === "kvm" ? "host" : "max",
    "-smp", String(spec.vcpus),
    "-m", String(spec.memoryMiB),
    "-nodefaults",
    "-no-user-config",
    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-msg", "timestamp=on",
    "-pidfile", files.pid,
    "-qmp", `unix:${optValue(files.qmp)},server=on,wait=off`,
    "-display", "none",
    "-vga", "std",
    "-vnc", `unix:${optValue(files.vnc)}`,
    "-chardev", `socket,id=serial0,path=${optValue(files.serial)},server=on,wait=off,logfile=${optValue(files.serialLog)},logappend=on`,
    "-serial", "chardev:serial0",
  ];

  // Boot order: bootindex on each device, the chosen kind first.
  let nextBootIndex = 1;
  const bootIndexes = { disk: [] as number[], cdrom: [] as number[] };
  const kinds = spec.boot === "cdrom" ? (["cdrom", "disk"] as const) : (["disk", "cdrom"] as const);
  for (const kind of kinds) {
    const count = kind === "disk" ? spec.disks.length : spec.cdroms.length;
    for (let i = 0; i < count; i++) bootIndexes[kind].push(nextBootIndex++);
  }

  let nextIdeBus = 0;
  const takeIdeBus = () => {
    if (nextIdeBus >= IDE_BUSES) {
      throw new GuesthouseError("invalid-input", `A guest can have at most ${IDE_BUSES} IDE disks and CD-ROMs together. Put more disks on virtio.`);
    }
    return `ide.${nextIdeBus++}`;
  };

  spec.disks.forEach((disk, i) => {
    const id = `disk${i}`;
    args.push(
      "-drive",
      `file=${optValue(diskPath(layout, disk.volume, disk.format))},format=${disk.format},if=none,id=${id},cache=none,aio=threads,discard=unmap`,
    );
    const device = disk.bus === "virtio" ? `virtio-blk-pci,drive=${id}` : `ide-hd,drive=${id},bus=${takeIdeBus()}`;
    args.push("-device", `${device},bootindex=${bootIndexes.disk[i]}`);
  });

  spec.cdroms.forEach((cdrom, i) => {
    const id = `cd${i}`;
    args.push(
      "-drive",
      `file=${optValue(isoPath(layout, cdrom.iso))},format=raw,if=none,id=${id},media=cdrom,readonly=on`,
      "-device",
      `ide-cd,drive=${id},bus=${takeIdeBus()},bootindex=${bootIndexes.cdrom[i]}`,
    );
  });

  spec.nics.forEach((nic, i) => {
    const id = `net${i}`;
    args.push("-netdev", `user,id=${id}`, "-device", `virtio-net-pci,netdev=${id},mac=${nic.mac}`);
  });

  return args;
}
