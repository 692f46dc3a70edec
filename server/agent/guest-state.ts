/**
 * One guest the agent supervises, and what its state folder keeps of it so that an
 * agent started later finds it again: `argv.json` (the command line QEMU runs), the
 * spec it runs (`spec.json`) with how QEMU names its disks (`disks.json`; both change
 * as disks are plugged in and out), `paused` while a person has paused it, and
 * `io-error` with the last disk error QEMU halted it for.
 */
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { DiskSpec, GuestSpec, NicSpec, GuestState, GuestStatus, VncTlsEndpoint } from "../domain/types";
import { guestSpecSchema } from "../domain/validation";
import { diskId, guestFiles, nicId, OVMF_VARS_TEMPLATE, type GuestFiles, type QemuLaunch } from "../qemu/args";
import type { QmpClient } from "../qemu/qmp";
import { GuesthouseError } from "../domain/errors";
import { readJsonFile, writeAtomically } from "./files";
import type { QemuIdentity } from "./qemu-user";
import { Turns } from "./turns";

/**
 * How QEMU knows one disk of a running guest, by volume. Kept in `disks.json`, since
 * the names of disks plugged in live cannot be derived from the spec.
 */
export interface PluggedDisk {
  /** The -drive id (disks the guest started with) or node name (plugged in live); see diskId. */
  id: string;
  /** "drive": opened by -drive, QEMU closes it with its device; "node": added with blockdev-add, the agent closes it. */
  opened: "drive" | "node";
  /** The device's id, or null for a guest started by an agent that gave disk devices none. */
  device: string | null;
  /** The hot-plug root port it sits in (q35), or null. */
  port: string | null;
  /** device_del was sent and the guest has not let go yet. */
  detaching: boolean;
  /** The fd sets holding its images' descriptors, removed (QMP remove-fd) once it is unplugged; absent for an older agent's guest. */
  fdSets?: number[];
}

export interface DiskTable {
  /** The number of the next disk plugged in (diskId). */
  next: number;
  /** The first fd set a disk plugged in next may use (sets are never reused within one QEMU run). */
  nextFdSet?: number;
  disks: Record<string, PluggedDisk>;
}

/**
 * The table of a guest as it started: disk<i> for its i-th disk, as buildQemuArgs
 * names them. Its device shares the name when the command line gave it one. Opened by
 * `-blockdev` (node named disk<i>: the agent closes it after an unplug), or by `-drive`
 * on a command line of an earlier agent (QEMU closes it with its device).
 */
export function startTable(disks: DiskSpec[], argv: string[] | null, launch?: Pick<QemuLaunch, "diskFdSets" | "nextFdSet">): DiskTable {
  const table: Record<string, PluggedDisk> = {};
  disks.forEach((disk, i) => {
    const id = diskId(i);
    const named = (argv ?? []).some((a) => a.includes(`drive=${id},id=${id}`));
    const node = (argv ?? []).some((a, at) => argv![at - 1] === "-blockdev" && a.includes(`"node-name":"${id}"`));
    const fdSets = launch?.diskFdSets[disk.volume];
    table[disk.volume] = { id, opened: node ? "node" : "drive", device: named ? id : null, port: null, detaching: false, ...(fdSets ? { fdSets } : {}) };
  });
  return { next: disks.length, ...(launch ? { nextFdSet: launch.nextFdSet } : {}), disks: table };
}

/**
 * How QEMU knows one network card of a running guest, by MAC. Kept in `nics.json`: the
 * cards it started with are nic<i>/net<i> in spec order, cards plugged in live are named
 * after their MAC (nicDeviceOf), and a card's tap is named after its slot, which stays
 * the card's while its QEMU runs whatever is plugged in or out around it.
 */
export interface PluggedNic {
  mac: string;
  /** The device's id (set_link, device_del). */
  device: string;
  /** The netdev's id (netdev_del). */
  netdev: string;
  /** The hot-plug root port it sits in (q35), or null (the machine's own bus). */
  port: string | null;
  /** Its number for its tap's name (tapName) on a managed network. */
  slot: number;
  /** device_del was sent and the guest has not let go yet. */
  detaching: boolean;
}

export interface NicTable {
  /** The slot of the next card plugged in (never reused within one QEMU run). */
  next: number;
  nics: PluggedNic[];
}

/** The table of a guest as it started (buildQemuLaunch's ids). */
export function startNics(nics: NicSpec[]): NicTable {
  return { next: nics.length, nics: nics.map((nic, i) => ({ mac: nic.mac.toLowerCase(), device: nicId(i), netdev: `net${i}`, port: null, slot: i, detaching: false })) };
}

/** One guest that the agent supervises (running, halted, or remembered as crashed). */
export class SupervisedGuest {
  state: GuestState = "starting";
  /** When the current state began (ms since the epoch). */
  since = Date.now();
  pid: number | null = null;
  child: ChildProcess | null = null;
  qmp: QmpClient | null = null;
  argv: string[] | null = null;
  spec: GuestSpec | null = null;
  logTail: string | null = null;
  /** QEMU's own run state, as query-status last said ("running", "internal-error", …). */
  runState: string | null = null;
  /** What QEMU said when it halted the guest itself (a disk error's device and cause), if anything. */
  haltReason: string | null = null;
  /** A person paused it (kept in the `paused` file): a stop QEMU reports is theirs, not QEMU's. */
  pauseRequested = false;
  /** The last disk error QEMU stopped the guest for (BLOCK_IO_ERROR, kept in the `io-error` file), in words. */
  lastIoError: string | null = null;
  /** Set when an exit is expected: a SHUTDOWN event was seen or force-off was asked for. */
  exitExpected = false;
  /** Resolves once the QEMU process is gone and its files are cleaned. */
  exited: Promise<void> | null = null;
  /** Set when its start failed: stops the QMP poll of that start. */
  aborted = false;
  /** Set by reboot: start again with this spec once QEMU has exited. */
  restartWith: GuestSpec | null = null;
  /** How QEMU names the disks of `spec`. */
  disks: DiskTable = { next: 0, disks: {} };
  /** How QEMU names the network cards of `spec`. */
  nics: NicTable = { next: 0, nics: [] };
  /** Disk and network card operations take turns: each reads and changes its table, and they share the hot-plug ports. */
  readonly diskOps = new Turns();
  /** Run-state queries take turns, so their answers apply in the order QEMU gave them. */
  readonly runStateChecks = new Turns();
  /** A run-state query waiting for its turn (not yet asked): later events join it. */
  runStateCheckWaiting: Promise<void> | null = null;
  /**
   * Its TLS VNC endpoint (GUESTHOUSE_VNC_TLS=on): the port is claimed while it starts
   * and held while its QEMU lives; read back from argv.json on adoption.
   */
  vncTls: VncTlsEndpoint | null = null;
  /** Who its QEMU runs as (null: the agent's own user); read from /proc on adoption. */
  identity: QemuIdentity | null = null;
  /** Its NICs have ports on managed networks, to be taken away when it stops. */
  plugged = false;

  constructor(
    readonly id: string,
    readonly stateDir: string,
    /** Its run folder (QEMU's sockets); the state folder itself for a guest an older agent started. */
    public runDir: string,
  ) {}

  /** Its files: sockets in the run folder, the rest in the state folder. */
  get files(): GuestFiles {
    return guestFiles(this.stateDir, this.runDir);
  }

  status(): GuestStatus {
    return {
      id: this.id,
      state: this.state,
      since: this.since,
      pid: this.pid,
      logTail: this.logTail,
      argv: this.argv,
      spec: this.spec,
      // Only when there is something to say, so the statuses of running guests stay as they were.
      ...(this.haltReason ? { haltReason: this.haltReason } : {}),
      // Only when there is one: with TLS VNC off, statuses look exactly as before.
      ...(this.vncTls && this.state !== "crashed" ? { vncTls: this.vncTls } : {}),
    };
  }

  /** Writes the running spec and its disk table (atomically: a crash leaves the old or the new). */
  async saveDisks(): Promise<void> {
    await writeAtomically(path.join(this.stateDir, "spec.json"), JSON.stringify(this.spec));
    await writeAtomically(path.join(this.stateDir, "disks.json"), JSON.stringify(this.disks));
  }

  /** Writes the running spec and its network card table (atomically). */
  async saveNics(): Promise<void> {
    await writeAtomically(path.join(this.stateDir, "spec.json"), JSON.stringify(this.spec));
    await writeAtomically(path.join(this.stateDir, "nics.json"), JSON.stringify(this.nics));
  }

  /** Records whether a person has paused the guest, for this agent and the next. */
  async setPauseRequested(requested: boolean): Promise<void> {
    this.pauseRequested = requested;
    const file = path.join(this.stateDir, "paused");
    if (requested) await fsp.writeFile(file, "", { mode: 0o600 });
    else await fsp.rm(file, { force: true });
  }

  /** Records the disk error QEMU is about to halt the guest for (null: none), for this agent and the next. */
  async setLastIoError(reason: string | null): Promise<void> {
    this.lastIoError = reason;
    const file = path.join(this.stateDir, "io-error");
    if (reason !== null) await writeAtomically(file, reason);
    else await fsp.rm(file, { force: true });
  }

  /** Reads back what the state folder keeps of a guest whose QEMU an earlier agent started. */
  async load(): Promise<void> {
    this.argv = await readJsonFile(path.join(this.stateDir, "argv.json"), z.array(z.string()));
    this.spec = await readJsonFile(path.join(this.stateDir, "spec.json"), guestSpecSchema);
    this.disks = (await readDiskTable(path.join(this.stateDir, "disks.json"), this.spec)) ?? startTable(this.spec?.disks ?? [], this.argv);
    this.nics = (await readNicTable(path.join(this.stateDir, "nics.json"), this.spec)) ?? startNics(this.spec?.nics ?? []);
    this.pauseRequested = fs.existsSync(path.join(this.stateDir, "paused"));
    this.lastIoError = await fsp.readFile(path.join(this.stateDir, "io-error"), "utf8").catch(() => null);
  }
}

/** A guest's disk table, if it is readable and names exactly the disks of its spec. */
async function readDiskTable(file: string, spec: GuestSpec | null): Promise<DiskTable | null> {
  try {
    const table = JSON.parse(await fsp.readFile(file, "utf8")) as DiskTable;
    const volumes = Object.keys(table.disks ?? {}).sort();
    const expected = (spec?.disks ?? []).map((d) => d.volume).sort();
    if (!Number.isInteger(table.next) || JSON.stringify(volumes) !== JSON.stringify(expected)) return null;
    return table;
  } catch {
    return null;
  }
}

/** A guest's network card table, if it is readable and names exactly the cards of its spec (in order). */
async function readNicTable(file: string, spec: GuestSpec | null): Promise<NicTable | null> {
  try {
    const table = JSON.parse(await fsp.readFile(file, "utf8")) as NicTable;
    const macs = (table.nics ?? []).map((n) => n.mac);
    const expected = (spec?.nics ?? []).map((n) => n.mac.toLowerCase());
    if (!Number.isInteger(table.next) || JSON.stringify(macs) !== JSON.stringify(expected)) return null;
    return table;
  } catch {
    return null;
  }
}

/** A guest's UEFI variables start as a copy of OVMF's template and are kept from then on. */
export async function ensureEfiVars(file: string): Promise<void> {
  try {
    await fsp.copyFile(OVMF_VARS_TEMPLATE, file, fs.constants.COPYFILE_EXCL);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return;
    if (code === "ENOENT") {
      throw new GuesthouseError("not-found", "UEFI firmware (Debian's ovmf package) is not installed on this host. Install it, or use BIOS.");
    }
    throw err;
  }
}
