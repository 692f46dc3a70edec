/**
 * The guest supervisor: starts QEMU processes, watches them over QMP, stops them,
 * and finds them again after the agent itself restarts.
 *
 * QEMU runs in its own process group with its output in `qemu.log`, so killing or
 * restarting the agent never stops a guest. Every guest has a state folder holding
 * its QMP, VNC and serial sockets, pid file, QEMU log, serial log (kept when the guest
 * stops, removed only when it is forgotten), `argv.json`, and
 * the spec it runs (`spec.json`) with how QEMU names its disks (`disks.json`); those
 * two change while it runs as disks are plugged in and out.
 *
 * Disk operations on a running guest (hot-plug, unplug, online resize, snapshots with
 * memory) go through QMP, one at a time per guest.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import { canDo, canTransition, type DiskSpec, type GuestAction, type GuestSpec, type GuestState, type GuestStatus, type VncTlsEndpoint } from "../domain/types";
import { QmpClient, type QmpEvent } from "../qemu/qmp";
import {
  assertHotpluggable,
  buildQemuArgs,
  diskId,
  guestFiles,
  hotplugCommands,
  hotplugPorts,
  OVMF_VARS_TEMPLATE,
  QEMU_BINARY,
  SCSI_CONTROLLER,
  secretPath,
  VNC_BASE_PORT,
  vncTlsPortOf,
  type QemuHostLayout,
} from "../qemu/args";
import { guestSpecSchema, parseOrThrow } from "../domain/validation";
import { ISO_POOL, type AgentConfig } from "./config";
import { rotateSerialLog } from "./serial";
import { Storage } from "./storage";
import { Turns } from "./turns";

const START_TIMEOUT_MS = 30_000;
const FORCE_OFF_GRACE_MS = 3_000;
const EXIT_TIMEOUT_MS = 10_000;
const LOG_TAIL_BYTES = 4096;
/** How long a guest has to let go of an unplugged disk before the agent says so. */
const UNPLUG_TIMEOUT_MS = 10_000;
/** A snapshot with memory writes all of the guest's RAM; this bounds the wait for it. */
const SNAPSHOT_TIMEOUT_MS = 10 * 60_000;

/**
 * How QEMU knows one disk of a running guest, by volume. Kept in `disks.json`, since
 * the names of disks plugged in live cannot be derived from the spec.
 */
interface PluggedDisk {
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
}

interface DiskTable {
  /** The number of the next disk plugged in (diskId). */
  next: number;
  disks: Record<string, PluggedDisk>;
}

/**
 * The table of a guest as it started: disk<i> for its i-th disk, as buildQemuArgs
 * names them. Its device shares the name when the command line gave it one.
 */
function startTable(disks: DiskSpec[], argv: string[] | null): DiskTable {
  const table: Record<string, PluggedDisk> = {};
  disks.forEach((disk, i) => {
    const id = diskId(i);
    const named = (argv ?? []).some((a) => a.includes(`drive=${id},id=${id}`));
    table[disk.volume] = { id, opened: "drive", device: named ? id : null, port: null, detaching: false };
  });
  return { next: disks.length, disks: table };
}

/** One guest that the agent supervises (running, or remembered as crashed). */
class SupervisedGuest {
  state: GuestState = "starting";
  pid: number | null = null;
  child: ChildProcess | null = null;
  qmp: QmpClient | null = null;
  argv: string[] | null = null;
  spec: GuestSpec | null = null;
  logTail: string | null = null;
  /** Set when an exit is expected: a SHUTDOWN event was seen or force-off was asked for. */
  exitExpected = false;
  /** Resolves once the QEMU process is gone and its files are cleaned. */
  exited: Promise<void> | null = null;
  /** Set when its start failed: stops the QMP poll of that start. */
  aborted = false;

  constructor(
    readonly id: string,
    readonly stateDir: string,
  ) {}

  /** When the current state began (ms since the epoch). */
  since = Date.now();
  /** Set by reboot: start again with this spec once QEMU has exited. */
  restartWith: GuestSpec | null = null;
  /** How QEMU names the disks of `spec`. */
  disks: DiskTable = { next: 0, disks: {} };
  /** Disk operations take turns: each reads and changes the disk table. */
  readonly diskOps = new Turns();
  /**
   * Its TLS VNC endpoint (GUESTHOUSE_VNC_TLS=on): the port is claimed while it starts
   * and held while its QEMU lives; read back from argv.json on adoption.
   */
  vncTls: VncTlsEndpoint | null = null;

  status(): GuestStatus {
    return {
      id: this.id,
      state: this.state,
      since: this.since,
      pid: this.pid,
      logTail: this.logTail,
      argv: this.argv,
      spec: this.spec,
      // Only when there is one: with TLS VNC off, statuses look exactly as before.
      ...(this.vncTls && this.state !== "crashed" ? { vncTls: this.vncTls } : {}),
    };
  }
}

export class Supervisor extends EventEmitter<{ state: [GuestStatus] }> {
  private readonly guests = new Map<string, SupervisedGuest>();
  /** Guests deleted since the agent started; a late start for one is refused. */
  private readonly forgotten = new Set<string>();

  /** Where QEMU's disks and ISOs are: the same checks as every other use of a name (Storage.existing). */
  private readonly storage: Storage;

  constructor(private readonly config: AgentConfig) {
    super();
    this.storage = new Storage(config);
  }

  /**
   * A disk or ISO QEMU is about to open: a regular file inside its storage folder (no
   * symlink leading out) and, for a disk, one that names no file but images in the
   * storage folders (its backing chain, no external data file or VMDK extents; read
   * from the headers, as QEMU will open it in `format`), or a clear refusal before QEMU
   * is asked.
   */
  private async mustBeImage(pool: string, file: string, what: string, format: string | null = null): Promise<void> {
    try {
      const found = await this.storage.existing(pool, file, pool === ISO_POOL ? "isos" : "images");
      if (pool !== ISO_POOL) await this.storage.selfContained(found, `The ${what}`, format);
    } catch (err) {
      if (err instanceof GuesthouseError && err.code === "not-found") {
        throw new GuesthouseError("not-found", `The ${what} is missing on the host. Check the storage folder, or recreate it.`);
      }
      throw err;
    }
  }

  stateDir(id: string): string {
    return path.join(this.config.guestsDir, id);
  }

  list(): GuestStatus[] {
    return [...this.guests.values()].map((g) => g.status());
  }

  status(id: string): GuestStatus {
    return this.guests.get(id)?.status() ?? { id, state: "stopped", since: 0, pid: null, logTail: null, argv: null, spec: null };
  }

  /**
   * The argument array this spec would run with on this host. With TLS VNC on, its
   * port is the first one no other guest holds now; the start takes whichever is free then.
   */
  argvFor(spec: GuestSpec): string[] {
    const running = this.guests.get(spec.id)?.vncTls?.port;
    const taken = this.vncTlsPortsTaken(null);
    return [QEMU_BINARY, ...buildQemuArgs(spec, this.layout(spec.id, running ?? this.vncTlsPorts().find((p) => !taken.has(p))))];
  }

  /** Where things are for QEMU; `vncTlsPort` adds the TLS VNC display (when TLS VNC is on). */
  private layout(id: string, vncTlsPort?: number): QemuHostLayout {
    const tls = this.config.vncTls;
    return {
      accelerator: this.config.accelerator,
      stateDir: this.stateDir(id),
      pools: this.config.pools,
      secretsDir: this.config.secretsDir,
      isoDir: this.config.isoDir,
      vncTls: tls && vncTlsPort !== undefined ? { dir: tls.dir, address: tls.address, display: vncTlsPort - VNC_BASE_PORT } : null,
    };
  }

  /** Every port of GUESTHOUSE_VNC_TLS_PORTS, in order (none when TLS VNC is off). */
  private vncTlsPorts(): number[] {
    const tls = this.config.vncTls;
    if (!tls) return [];
    return Array.from({ length: tls.lastPort - tls.firstPort + 1 }, (_, i) => tls.firstPort + i);
  }

  /** The ports other guests' QEMUs hold or are starting with. */
  private vncTlsPortsTaken(except: SupervisedGuest | null): Set<number> {
    const taken = new Set<number>();
    for (const g of this.guests.values()) {
      if (g !== except && g.vncTls && g.state !== "crashed") taken.add(g.vncTls.port);
    }
    return taken;
  }

  /**
   * Claims a free port of the range for a starting guest: one no other guest holds
   * (claimed before each await, so two starts never pick the same) and that nothing
   * else on the host listens on. Refuses clearly when none is left.
   */
  private async claimVncTlsPort(guest: SupervisedGuest): Promise<number | undefined> {
    const tls = this.config.vncTls;
    if (!tls) return undefined;
    for (const port of this.vncTlsPorts()) {
      // Asked again for each port: another start may have claimed one while this one awaited.
      if (this.vncTlsPortsTaken(guest).has(port)) continue;
      guest.vncTls = { host: tls.connectHost, port };
      if (await portFree(tls.address, port)) return port;
    }
    guest.vncTls = null;
    const range = tls.firstPort === tls.lastPort ? `port ${tls.firstPort}` : `ports ${tls.firstPort}–${tls.lastPort}`;
    throw new GuesthouseError(
      "conflict",
      `No port is free for this guest's TLS VNC endpoint: ${range} (GUESTHOUSE_VNC_TLS_PORTS) are all taken by running guests or other programs. Stop a guest, or give the agent a wider range.`,
    );
  }

  private transition(guest: SupervisedGuest, next: GuestState): void {
    if (guest.state === next) return;
    if (!canTransition(guest.state, next)) {
      throw new GuesthouseError("internal", `Guest ${guest.id} cannot go from ${guest.state} to ${next}.`);
    }
    guest.state = next;
    guest.since = Date.now();
    this.emit("state", guest.status());
  }

  /** Starts QEMU and resolves once QMP answers; rejects with QEMU's own output if it fails. */
  async start(spec: GuestSpec): Promise<GuestStatus> {
    if (this.forgotten.has(spec.id)) throw new GuesthouseError("not-found", "This guest has been deleted.");
    const existing = this.guests.get(spec.id);
    if (existing && existing.state !== "crashed") {
      throw new GuesthouseError("conflict", `This guest is already ${existing.state}.`);
    }
    // Claim the guest synchronously, before any await: a second start finds it "starting".
    const guest = new SupervisedGuest(spec.id, this.stateDir(spec.id));
    this.guests.set(spec.id, guest);
    this.emit("state", guest.status());
    try {
      await this.spawnQemu(guest, spec);
      return guest.status();
    } catch (err) {
      guest.aborted = true;
      await this.killQuietly(guest);
      await this.cleanFiles(guest);
      if (this.guests.get(spec.id) === guest) this.guests.delete(spec.id);
      this.emit("state", this.status(spec.id));
      throw err;
    }
  }

  private async spawnQemu(guest: SupervisedGuest, spec: GuestSpec): Promise<void> {
    for (const disk of spec.disks) {
      await this.mustBeImage(disk.pool, disk.file, `disk ${disk.pool}/${disk.file}`, disk.format);
      if (disk.encrypted) await mustHaveSecret(secretPath(this.layout(spec.id), disk.volume), disk);
    }
    for (const cdrom of spec.cdroms) await this.mustBeImage(ISO_POOL, cdrom.iso, `ISO ${cdrom.iso}`);

    const files = guestFiles(guest.stateDir);
    await fsp.mkdir(guest.stateDir, { recursive: true, mode: 0o700 });
    await this.cleanFiles(guest);
    // The serial log is kept across starts (QEMU appends to it): rotate it first if it is full.
    if (spec.serial) await rotateSerialLog(files, this.config.serialLogBytes);
    if (spec.firmware === "uefi") await ensureEfiVars(files.efiVars);
    const vncTlsPort = await this.claimVncTlsPort(guest);
    const argv = [QEMU_BINARY, ...buildQemuArgs(spec, this.layout(spec.id, vncTlsPort))];
    guest.argv = argv;
    guest.spec = spec;
    guest.disks = startTable(spec.disks, argv);
    await fsp.writeFile(path.join(guest.stateDir, "argv.json"), JSON.stringify(argv));
    await this.saveDisks(guest);

    const log = fs.openSync(files.log, "w", 0o600);
    let child: ChildProcess;
    try {
      // QEMU gets a minimal environment: nothing of the agent's own (secrets included).
      child = spawn(argv[0]!, argv.slice(1), {
        detached: true,
        stdio: ["ignore", log, log],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" } as unknown as NodeJS.ProcessEnv, // Next declares NODE_ENV required
      });
    } finally {
      fs.closeSync(log);
    }
    child.unref();
    guest.child = child;
    const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      child.once("error", (err) => {
        fs.appendFileSync(files.log, `${err.message}\n`);
        resolve({ code: null, signal: null });
      });
    });
    guest.pid = child.pid ?? null;

    const connected = this.connectWhenReady(guest, files.qmp);
    const outcome = await Promise.race([connected.then(() => "ready" as const), exit.then((e) => e)]);
    if (outcome !== "ready") {
      connected.catch(() => {});
      const tail = await readTail(files.log);
      const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with code ${outcome.code}`;
      throw new GuesthouseError("qemu-failed", `QEMU did not start: it ${how}. ${tail.trim() || "It printed nothing."}`, argv.join(" "));
    }
    guest.exited = exit.then(() => this.afterExit(guest));
    await this.syncRunstate(guest);
  }

  /** Polls for the QMP socket and connects; stops trying once the process is gone. */
  private async connectWhenReady(guest: SupervisedGuest, qmpPath: string): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (guest.aborted || this.guests.get(guest.id) !== guest) throw new Error("start abandoned");
      if (guest.child && (guest.child.exitCode !== null || guest.child.signalCode !== null)) throw new Error("exited");
      if (fs.existsSync(qmpPath)) {
        const qmp = new QmpClient();
        try {
          await qmp.connect(qmpPath);
          this.watch(guest, qmp);
          return;
        } catch {
          // The socket exists but QEMU is not listening yet; try again.
        }
      }
      await sleep(20);
    }
    throw new GuesthouseError("timeout", `QEMU did not open its QMP socket within ${START_TIMEOUT_MS / 1000} s.`);
  }

  private watch(guest: SupervisedGuest, qmp: QmpClient): void {
    guest.qmp = qmp;
    qmp.on("event", (event: QmpEvent) => this.onEvent(guest, event));
    qmp.once("disconnect", () => {
      guest.qmp = null;
      // QEMU closes QMP only when it exits (or the agent closes it on purpose).
      if (!guest.child && guest.pid !== null && !guest.exited) this.watchPidExit(guest);
    });
  }

  private onEvent(guest: SupervisedGuest, event: QmpEvent): void {
    switch (event.event) {
      case "SHUTDOWN":
        guest.exitExpected = true;
        break;
      case "STOP":
        if (guest.state === "running") this.transition(guest, "paused");
        break;
      case "RESUME":
        if (guest.state === "paused" || guest.state === "starting") this.transition(guest, "running");
        break;
      case "DEVICE_DELETED": {
        // The guest let go of a device: an unplug the agent asked for, or one the guest did itself.
        const device = event.data?.device;
        if (typeof device === "string" && Object.values(guest.disks.disks).some((d) => d.device === device)) {
          guest.diskOps.run(() => this.finishUnplug(guest, device)).catch((err) =>
            console.error(`agent: guest ${guest.id}: cleaning up after unplugging ${device} failed:`, err),
          );
        }
        break;
      }
    }
  }

  private async syncRunstate(guest: SupervisedGuest): Promise<void> {
    const status = await guest.qmp!.execute<{ running: boolean; status: string }>("query-status");
    this.transition(guest, status.running ? "running" : "paused");
  }

  private async afterExit(guest: SupervisedGuest): Promise<void> {
    if (this.guests.get(guest.id) !== guest) return;
    await guest.qmp?.close();
    await this.cleanFiles(guest);
    guest.pid = null;
    guest.child = null;
    guest.vncTls = null;
    if (guest.exitExpected) {
      this.transition(guest, "stopped");
      this.guests.delete(guest.id);
      if (guest.restartWith) {
        const spec = guest.restartWith;
        this.start(spec).catch((err) => console.error(`agent: guest ${guest.id} did not come back after its reboot:`, err));
      }
    } else {
      guest.logTail = await readTail(guestFiles(guest.stateDir).log);
      this.transition(guest, "crashed");
    }
  }

  private running(id: string): SupervisedGuest {
    const guest = this.guests.get(id);
    if (!guest || guest.state === "crashed") throw new GuesthouseError("conflict", "This guest is not running.");
    return guest;
  }

  /** The guest, if the state table allows this action now, with its QMP connection. */
  private forAction(id: string, action: GuestAction): SupervisedGuest & { qmp: QmpClient } {
    const guest = this.guests.get(id);
    const state = guest?.state ?? "stopped";
    if (!canDo(state, action)) throw new GuesthouseError("conflict", `A ${state} guest cannot ${action}.`);
    if (!guest?.qmp) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest; force it off instead.");
    return guest as SupervisedGuest & { qmp: QmpClient };
  }

  /** Presses the ACPI power button; the guest decides when to power off. */
  async shutdown(id: string): Promise<GuestStatus> {
    const guest = this.forAction(id, "shutdown");
    await guest.qmp.execute("system_powerdown");
    this.transition(guest, "shutting-down");
    return guest.status();
  }

  /**
   * Presses the ACPI power button and starts the guest again once it has powered off,
   * with `spec` (which may carry changes made while it ran), as Proxmox's reboot does.
   */
  async reboot(spec: GuestSpec): Promise<GuestStatus> {
    const guest = this.forAction(spec.id, "reboot");
    await guest.qmp.execute("system_powerdown");
    guest.restartWith = spec;
    this.transition(guest, "shutting-down");
    return guest.status();
  }

  /** Hard reset, like pressing the reset button; the guest keeps its QEMU process. */
  async reset(id: string): Promise<GuestStatus> {
    const guest = this.forAction(id, "reset");
    await guest.qmp.execute("system_reset");
    return guest.status();
  }

  /** Pauses the vCPUs; resolves once QEMU reports the guest stopped. */
  async pause(id: string): Promise<GuestStatus> {
    const guest = this.forAction(id, "pause");
    await guest.qmp.execute("stop");
    await this.syncRunstate(guest);
    return guest.status();
  }

  async resume(id: string): Promise<GuestStatus> {
    const guest = this.forAction(id, "resume");
    await guest.qmp.execute("cont");
    await this.syncRunstate(guest);
    return guest.status();
  }

  /**
   * The guest whose QEMU has this image open now (running, paused, starting, shutting
   * down: anything but crashed), by the spec it was started with.
   */
  userOf(pool: string, file: string): { guestId: string; volume: string } | null {
    for (const guest of this.guests.values()) {
      if (guest.state === "crashed") continue;
      const disk = guest.spec?.disks.find((d) => d.pool === pool && d.file === file);
      if (disk) return { guestId: guest.id, volume: disk.volume };
    }
    return null;
  }

  /** A guest whose disks can change now (running or paused), with its QMP connection. */
  private live(id: string): SupervisedGuest & { qmp: QmpClient; spec: GuestSpec } {
    const guest = this.guests.get(id);
    const state = guest?.state ?? "stopped";
    if (!guest || (state !== "running" && state !== "paused")) {
      throw new GuesthouseError("conflict", `This guest is ${state}; disks change live only while it runs or is paused. Change its hardware instead.`);
    }
    if (!guest.qmp || !guest.spec) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest; force it off instead.");
    return guest as SupervisedGuest & { qmp: QmpClient; spec: GuestSpec };
  }

  /** How QEMU names one of a running guest's disks. */
  private pluggedOf(guest: SupervisedGuest, volume: string): PluggedDisk {
    const plugged = Object.hasOwn(guest.disks.disks, volume) ? guest.disks.disks[volume] : undefined;
    if (!plugged) throw new GuesthouseError("not-found", "This disk is not attached to the running guest.");
    return plugged;
  }

  /** Grows a disk of a running guest (QMP block_resize); the guest sees the new size at once. */
  async resize(id: string, volume: string, bytes: number): Promise<void> {
    const guest = this.running(id);
    if (!guest.qmp) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest.");
    const qmp = guest.qmp;
    await guest.diskOps.run(async () => {
      const plugged = this.pluggedOf(guest, volume);
      const target = plugged.opened === "drive" ? { device: plugged.id } : { "node-name": plugged.id };
      await qmp.execute("block_resize", { ...target, size: bytes });
    });
  }

  /**
   * Internal snapshots of a running (or paused) guest with its memory, through QMP's
   * snapshot jobs: every writable disk gets the snapshot, the first one also the
   * memory. Reverting brings back disks and memory together, so the guest goes on
   * from the moment of the snapshot. To take or revert to one, every writable disk
   * must be qcow2: a snapshot that left one out would bring back the memory but not
   * that disk's contents. Deleting takes the snapshot out of whichever disks have it.
   */
  async snapshot(id: string, op: "create" | "revert" | "delete", name: string): Promise<void> {
    const guest = this.live(id);
    await guest.diskOps.run(async () => {
      const writable = guest.spec.disks.filter((d) => !d.readOnly && (op !== "delete" || d.format === "qcow2"));
      const unable = writable.filter((d) => d.format !== "qcow2");
      if (unable.length > 0) {
        const list = unable.map((d) => `${d.file} (${d.format})`).join(", ");
        throw new GuesthouseError(
          "invalid-input",
          `A snapshot of a running guest covers all its writable disks, and only qcow2 disks take snapshots; ${list} cannot. Convert ${unable.length > 1 ? "them" : "it"} to qcow2 or make ${unable.length > 1 ? "them" : "it"} read-only, or stop the guest and snapshot single images.`,
        );
      }
      if (writable.length === 0) throw new GuesthouseError("invalid-input", "This guest has no writable disk to keep a snapshot in.");
      const nodes = await this.nodeNames(guest, writable);
      const command = { create: "snapshot-save", revert: "snapshot-load", delete: "snapshot-delete" }[op];
      const args = op === "delete" ? { tag: name, devices: nodes } : { tag: name, vmstate: nodes[0], devices: nodes };
      const doing = { create: `take the snapshot "${name}"`, revert: `revert to the snapshot "${name}"`, delete: `delete the snapshot "${name}"` }[op];
      await this.runJob(guest, command, args, doing, SNAPSHOT_TIMEOUT_MS);
    });
  }

  /** The block node names of disks: their own for disks plugged in live, QEMU's automatic ones for -drive disks. */
  private async nodeNames(guest: SupervisedGuest & { qmp: QmpClient }, disks: DiskSpec[]): Promise<string[]> {
    const table = disks.map((d) => this.pluggedOf(guest, d.volume));
    if (table.every((p) => p.opened === "node")) return table.map((p) => p.id);
    const blocks = await guest.qmp.execute<Array<{ device: string; inserted?: { "node-name"?: string } }>>("query-block");
    return table.map((p) => {
      if (p.opened === "node") return p.id;
      const node = blocks.find((b) => b.device === p.id)?.inserted?.["node-name"];
      if (!node) throw new GuesthouseError("internal", `QEMU does not list the drive ${p.id} of this guest.`);
      return node;
    });
  }

  /**
   * Runs one QMP job to its end: starts it, waits until it has concluded (its event,
   * with query-jobs as the word that counts), dismisses it, and turns its error into
   * plain words. QEMU 7.2 runs snapshot jobs in its main loop, so the command's own
   * reply can come only once the job is done: it gets the job's whole time.
   */
  private async runJob(guest: SupervisedGuest & { qmp: QmpClient }, command: string, args: Record<string, unknown>, doing: string, timeoutMs: number): Promise<void> {
    const qmp = guest.qmp;
    const jobId = `gh-${command}-${Date.now().toString(36)}`;
    const deadline = Date.now() + timeoutMs;
    let wake = () => {};
    const onEvent = (event: QmpEvent) => {
      if (event.event === "JOB_STATUS_CHANGE" && event.data?.id === jobId) wake();
    };
    qmp.on("event", onEvent);
    try {
      await qmp.execute(command, { "job-id": jobId, ...args }, timeoutMs);
      for (;;) {
        const jobs = await qmp.execute<Array<{ id: string; status: string; error?: string }>>("query-jobs", undefined, Math.max(1000, deadline - Date.now()));
        const job = jobs.find((j) => j.id === jobId);
        if (!job) throw new GuesthouseError("internal", `QEMU lost track of its ${command} job.`);
        if (job.status === "concluded") {
          await qmp.execute("job-dismiss", { id: jobId });
          if (job.error) throw new GuesthouseError("qmp-error", `QEMU could not ${doing}: ${job.error.replace(/\.$/, "")}.`, `${command} job ${jobId}`);
          return;
        }
        if (Date.now() > deadline) {
          throw new GuesthouseError("timeout", `QEMU has not finished trying to ${doing} after ${Math.round(timeoutMs / 1000)} s; it goes on in the background. Look at the image's snapshots later.`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 250);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      qmp.off("event", onEvent);
    }
  }

  /**
   * Plugs a disk into a running guest: its passphrase's secret (encrypted disks), the
   * image's block nodes, then the device, on a free hot-plug root port (q35) or the
   * PCI bus (pc), or on the guest's SCSI controller. What was added is taken away
   * again if a later step fails. The running spec gains the disk, so the image
   * counts as in use and the web sees it among the guest's disks.
   */
  async attachDisk(id: string, disk: DiskSpec): Promise<GuestStatus> {
    const guest = this.live(id);
    return guest.diskOps.run(async () => {
      const spec = guest.spec;
      if (spec.disks.some((d) => d.volume === disk.volume)) throw new GuesthouseError("conflict", "This disk is already attached to the guest.");
      assertHotpluggable(disk);
      const user = this.userOf(disk.pool, disk.file);
      if (user) {
        throw new GuesthouseError(
          "conflict",
          user.guestId === id ? `${disk.file} is already attached to this guest.` : `${disk.file} is attached to another running guest; detach it there first.`,
        );
      }
      const next = parseOrThrow(guestSpecSchema, { ...spec, disks: [...spec.disks, disk] }, "The guest with this disk");
      const layout = this.layout(id);
      const devices = await this.peripherals(guest);
      let port: string | null = null;
      if (disk.bus === "scsi" && !devices.has(SCSI_CONTROLLER)) {
        throw new GuesthouseError("invalid-input", "This guest started without a SCSI controller, so a SCSI disk cannot be plugged in now. Attach the disk on virtio, or add it while the guest is stopped.");
      }
      if (disk.bus === "virtio" && spec.machine === "q35") {
        const ports = hotplugPorts("q35");
        if (!ports.every((p) => devices.has(p))) {
          throw new GuesthouseError("conflict", "This guest started without hot-plug slots (an older agent started it). Restart it once to plug disks in while it runs.");
        }
        const taken = new Set(Object.values(guest.disks.disks).map((d) => d.port));
        port = ports.find((p) => !taken.has(p)) ?? null;
        if (!port) {
          throw new GuesthouseError("conflict", `All ${ports.length} hot-plug slots of this guest are taken. Detach a disk plugged in while it runs, or add the disk while the guest is stopped.`);
        }
      }
      // Checked before QEMU is asked, so a missing file is named in the agent's words.
      await this.mustBeImage(disk.pool, disk.file, `disk ${disk.pool}/${disk.file}`, disk.format);
      if (disk.encrypted) await mustHaveSecret(secretPath(layout, disk.volume), disk);

      // Ids are never reused within one QEMU run: a device the guest has not let go of keeps its name.
      let index = guest.disks.next;
      while (devices.has(diskId(index))) index++;
      const name = diskId(index);
      const commands = hotplugCommands(disk, layout, name, port);
      const undo: Array<() => Promise<unknown>> = [];
      try {
        if (commands.secret) {
          await guest.qmp.execute("object-add", commands.secret);
          undo.push(() => guest.qmp.execute("object-del", { id: commands.secret!.id }));
        }
        await guest.qmp.execute("blockdev-add", commands.blockdev);
        undo.push(() => guest.qmp.execute("blockdev-del", { "node-name": name }));
        await guest.qmp.execute("device_add", commands.device);
      } catch (err) {
        for (const step of undo.reverse()) await step().catch(() => {});
        throw plugError(err, disk);
      }
      guest.disks.next = index + 1;
      guest.disks.disks[disk.volume] = { id: name, opened: "node", device: name, port, detaching: false };
      guest.spec = next;
      await this.saveDisks(guest);
      this.emit("state", guest.status());
      return guest.status();
    });
  }

  /**
   * Unplugs a disk from a running guest: asks the guest to let go of the device and
   * waits (bounded) until it has, then closes the image. A guest that does not let go
   * in time keeps the disk; should it let go later, the agent finishes then.
   */
  async detachDisk(id: string, volume: string): Promise<GuestStatus> {
    const guest = this.live(id);
    return guest.diskOps.run(async () => {
      const disk = guest.spec.disks.find((d) => d.volume === volume);
      const plugged = disk ? guest.disks.disks[volume] : undefined;
      if (!disk || !plugged) throw new GuesthouseError("not-found", "This disk is not attached to the running guest.");
      if (disk.bus === "ide") throw new GuesthouseError("invalid-input", "IDE disks cannot be unplugged from a running guest. Stop the guest to remove it.");
      if (!plugged.device) throw new GuesthouseError("conflict", "This disk's device has no name QEMU could unplug it by (an older agent started the guest). Stop the guest to remove it.");
      if (disk.bus === "virtio" && guest.spec.machine === "q35" && plugged.port === null) {
        throw new GuesthouseError(
          "conflict",
          "This disk sits on the q35 machine's built-in PCIe bus, which cannot unplug devices (only disks plugged in while the guest runs can be). Stop the guest to remove it.",
        );
      }
      const device = plugged.device;
      const deleted = nextEvent(guest.qmp, (e) => e.event === "DEVICE_DELETED" && e.data?.device === device, UNPLUG_TIMEOUT_MS);
      try {
        await guest.qmp.execute("device_del", { id: device });
      } catch (err) {
        // A second request while the first is pending: keep waiting for the guest.
        if (!(plugged.detaching && /already|in progress|pending/i.test((err as Error).message))) {
          deleted.cancel();
          throw err;
        }
      }
      if (!plugged.detaching) {
        plugged.detaching = true;
        await this.saveDisks(guest);
      }
      if (!(await deleted.promise)) {
        if (!guest.qmp) throw new GuesthouseError("qmp-disconnected", "The connection to QEMU closed while the disk was being unplugged.");
        throw new GuesthouseError(
          "timeout",
          `The guest has not let go of ${disk.file} within ${UNPLUG_TIMEOUT_MS / 1000} s (its system may not handle unplugging, may still be booting, or may be using the disk). The disk stays attached until it does; try again, or stop the guest.`,
        );
      }
      await this.finishUnplug(guest, device);
      return guest.status();
    });
  }

  /**
   * Once QEMU reports a disk's device gone: closes what the agent opened (the node
   * of a disk plugged in live; QEMU closes -drive disks itself) and the secret, and
   * takes the disk out of the running spec. Does nothing for a device it finished already.
   */
  private async finishUnplug(guest: SupervisedGuest, device: string): Promise<void> {
    const volume = Object.keys(guest.disks.disks).find((v) => guest.disks.disks[v]!.device === device);
    if (volume === undefined || !guest.spec) return;
    const plugged = guest.disks.disks[volume]!;
    const disk = guest.spec.disks.find((d) => d.volume === volume);
    const qmp = guest.qmp;
    if (qmp && plugged.opened === "node") {
      await qmp.execute("blockdev-del", { "node-name": plugged.id }).catch((err) => console.error(`agent: guest ${guest.id}: closing ${plugged.id}:`, err));
    }
    if (qmp && disk?.encrypted) {
      await qmp.execute("object-del", { id: `${plugged.id}-secret` }).catch((err) => console.error(`agent: guest ${guest.id}: removing ${plugged.id}'s secret:`, err));
    }
    delete guest.disks.disks[volume];
    guest.spec = { ...guest.spec, disks: guest.spec.disks.filter((d) => d.volume !== volume) };
    await this.saveDisks(guest);
    this.emit("state", guest.status());
  }

  /** The ids of the guest's devices (disks, controllers, hot-plug ports), as QEMU lists them now. */
  private async peripherals(guest: SupervisedGuest & { qmp: QmpClient }): Promise<Set<string>> {
    const children = await guest.qmp.execute<Array<{ name: string; type: string }>>("qom-list", { path: "/machine/peripheral" });
    return new Set(children.filter((c) => c.type.startsWith("child<")).map((c) => c.name));
  }

  /** Writes the running spec and its disk table (atomically: a crash leaves the old or the new). */
  private async saveDisks(guest: SupervisedGuest): Promise<void> {
    await writeAtomically(path.join(guest.stateDir, "spec.json"), JSON.stringify(guest.spec));
    await writeAtomically(path.join(guest.stateDir, "disks.json"), JSON.stringify(guest.disks));
  }

  /**
   * After the agent restarts: unplugs the agent asked for that the guest finished
   * while nobody listened.
   */
  private async reconcileDisks(guest: SupervisedGuest & { qmp: QmpClient }): Promise<void> {
    const pending = Object.values(guest.disks.disks).filter((d) => d.detaching && d.device);
    if (pending.length === 0) return;
    const devices = await this.peripherals(guest);
    for (const plugged of pending) {
      if (!devices.has(plugged.device!)) await guest.diskOps.run(() => this.finishUnplug(guest, plugged.device!));
    }
  }

  /** Stops QEMU now: QMP `quit`, then SIGKILL if it lingers. Resolves once it is gone. */
  async forceOff(id: string): Promise<GuestStatus> {
    const guest = this.running(id);
    if (guest.pid === null) throw new GuesthouseError("conflict", "QEMU is being launched; try again in a moment.");
    guest.exitExpected = true;
    guest.restartWith = null; // forcing off cancels a pending reboot
    // Ask politely, but never wait on the answer: a stuck QEMU may not give one.
    guest.qmp?.execute("quit", undefined, FORCE_OFF_GRACE_MS).catch(() => {});
    if (!(await this.waitExited(guest, FORCE_OFF_GRACE_MS))) {
      if (guest.pid !== null) killGroup(guest.pid, "SIGKILL");
      if (!(await this.waitExited(guest, EXIT_TIMEOUT_MS))) {
        throw new GuesthouseError("timeout", "QEMU did not exit after SIGKILL. The host may be overloaded; try again.");
      }
    }
    return this.status(id);
  }

  private async waitExited(guest: SupervisedGuest, timeoutMs: number): Promise<boolean> {
    if (guest.pid === null) return true;
    if (!guest.exited) this.watchPidExit(guest);
    return Promise.race([guest.exited!.then(() => true), sleep(timeoutMs).then(() => false)]);
  }

  /**
   * For a QEMU that is not our child (adopted): poll its pid until it is gone, then
   * clean up. Only a confirmed exit counts; a process stuck past the wait stays as is.
   */
  private watchPidExit(guest: SupervisedGuest): void {
    const pid = guest.pid!;
    guest.exited = (async () => {
      while (!(await waitForPidExit(pid, EXIT_TIMEOUT_MS))) {
        if (this.guests.get(guest.id) !== guest) return;
      }
      await this.afterExit(guest);
    })();
  }

  /** Removes a stopped guest's state folder (sockets, logs). */
  async forget(id: string): Promise<void> {
    const guest = this.guests.get(id);
    if (guest && guest.state !== "crashed") throw new GuesthouseError("conflict", `This guest is ${guest.state}; stop it first.`);
    this.guests.delete(id);
    this.forgotten.add(id);
    await fsp.rm(this.stateDir(id), { recursive: true, force: true });
  }

  /** Finds guests that were running before the agent (re)started, and guests that died meanwhile. */
  async adopt(): Promise<void> {
    let ids: string[];
    try {
      ids = await fsp.readdir(this.config.guestsDir);
    } catch {
      return;
    }
    for (const id of ids) {
      const stateDir = this.stateDir(id);
      const files = guestFiles(stateDir);
      const pid = await readPid(files.pid);
      if (pid === null) continue;
      const guest = new SupervisedGuest(id, stateDir);
      guest.argv = await readArgv(path.join(stateDir, "argv.json"));
      guest.spec = await readSpec(path.join(stateDir, "spec.json"));
      guest.disks = (await readDiskTable(path.join(stateDir, "disks.json"), guest.spec)) ?? startTable(guest.spec?.disks ?? [], guest.argv);
      guest.pid = pid;
      const vncTlsPort = vncTlsPortOf(guest.argv);
      // Its QEMU keeps the display it started with, even if TLS VNC was turned off since.
      if (vncTlsPort !== null) guest.vncTls = { host: this.config.vncTls?.connectHost ?? os.hostname(), port: vncTlsPort };
      this.guests.set(id, guest);
      if (isQemuOf(pid, id)) {
        try {
          const qmp = new QmpClient();
          await qmp.connect(files.qmp);
          this.watch(guest, qmp);
          await this.syncRunstate(guest);
          await this.reconcileDisks(guest as SupervisedGuest & { qmp: QmpClient }).catch((err) =>
            console.error(`agent: guest ${id}: checking its unplugged disks failed:`, err),
          );
          console.log(`agent: adopted guest ${id} (pid ${pid}, ${guest.state})`);
        } catch (err) {
          // Alive but QMP does not answer: leave its files alone; force off still works by pid.
          console.error(`agent: guest ${id} (pid ${pid}) is alive but QMP failed:`, err);
          this.watchPidExit(guest);
        }
        continue;
      }
      if (pidAlive(pid)) {
        // A live process that is not this guest's QEMU: the pid was reused. The guest is gone.
        console.error(`agent: guest ${id}: pid ${pid} now belongs to another program`);
      }
      // The pid file outlived its QEMU: it died while nobody watched.
      guest.pid = null;
      guest.vncTls = null;
      guest.logTail = await readTail(files.log);
      await this.cleanFiles(guest);
      this.transition(guest, "crashed");
    }
  }

  /** Closes QMP connections without touching the guests (agent shutdown). */
  async detachAll(): Promise<void> {
    await Promise.all([...this.guests.values()].map((g) => g.qmp?.close()));
  }

  private async killQuietly(guest: SupervisedGuest): Promise<void> {
    await guest.qmp?.close();
    if (guest.pid !== null) {
      killGroup(guest.pid, "SIGKILL");
      await waitForPidExit(guest.pid, EXIT_TIMEOUT_MS);
    }
  }

  private async cleanFiles(guest: SupervisedGuest): Promise<void> {
    const files = guestFiles(guest.stateDir);
    await Promise.all([files.qmp, files.vnc, files.serial, files.pid].map((f) => fsp.rm(f, { force: true })));
  }

  /**
   * A guest whose QEMU runs (running, paused or shutting down), for its consoles: its
   * files (VNC and serial sockets, serial log), the spec it runs and its QMP connection.
   */
  consoleOf(id: string): ConsoleTarget {
    const guest = this.running(id);
    if (guest.state === "starting") throw new GuesthouseError("conflict", "This guest is still starting; try again in a moment.");
    if (!guest.qmp) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest; force it off instead.");
    return { id, state: guest.state, stateDir: guest.stateDir, files: guestFiles(guest.stateDir), spec: guest.spec, qmp: guest.qmp, vncTls: guest.vncTls };
  }

  /** The ids and state folders of the guests whose QEMU runs now (for the serial log's rotation). */
  runningGuests(): Array<{ id: string; stateDir: string }> {
    return [...this.guests.values()].filter((g) => g.pid !== null && g.state !== "crashed").map((g) => ({ id: g.id, stateDir: g.stateDir }));
  }
}

/** What the console modules (server/agent/console.ts) need of a running guest. */
export interface ConsoleTarget {
  id: string;
  state: GuestState;
  stateDir: string;
  files: ReturnType<typeof guestFiles>;
  spec: GuestSpec | null;
  qmp: QmpClient;
  /** Its TLS VNC endpoint, when its QEMU has one. */
  vncTls: VncTlsEndpoint | null;
}

/** Nothing listens on this address and port now (QEMU will bind it a moment later). */
function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once("error", () => resolve(false));
    probe.listen({ host: address, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}


/** An encrypted disk's passphrase file, which only this host has: without it the image cannot be opened. */
async function mustHaveSecret(file: string, disk: DiskSpec): Promise<void> {
  try {
    await fsp.access(file, fs.constants.R_OK);
  } catch {
    throw new GuesthouseError(
      "not-found",
      `The passphrase of the encrypted disk ${disk.file} is missing from this host's secrets folder, so the disk cannot be opened. Restore its .key file from a backup, or detach the disk.`,
      file,
    );
  }
}

/** QEMU's refusal to plug a disk in, in words that say what to do. */
function plugError(err: unknown, disk: DiskSpec): unknown {
  if (!(err instanceof GuesthouseError) || err.code !== "qmp-error") return err;
  if (/Failed to get "\w+" lock|another process using/i.test(err.message)) {
    return new GuesthouseError("conflict", `${disk.file} is open in another program (another QEMU or qemu-img); it cannot be attached meanwhile.`, err.message);
  }
  if (/not in .* format|image is not|Invalid|magic/i.test(err.message) && !/secret|key|passphrase|decrypt/i.test(err.message)) {
    return new GuesthouseError("invalid-input", `QEMU cannot open ${disk.file} as ${disk.format}: ${err.message.replace(/^QEMU refused [^:]+: /, "")}`, err.message);
  }
  return new GuesthouseError("qmp-error", `QEMU could not plug ${disk.file} in: ${err.message.replace(/^QEMU refused [^:]+: /, "")}`, err.message);
}

/** The next event `match` accepts, or null after `timeoutMs` or when QMP closes; listening starts at once. */
function nextEvent(qmp: QmpClient, match: (event: QmpEvent) => boolean, timeoutMs: number): { promise: Promise<QmpEvent | null>; cancel(): void } {
  let finish: (event: QmpEvent | null) => void = () => {};
  const promise = new Promise<QmpEvent | null>((resolve) => {
    const timer = setTimeout(() => finish(null), timeoutMs);
    const onEvent = (event: QmpEvent) => {
      if (match(event)) finish(event);
    };
    const onClose = () => finish(null);
    finish = (event) => {
      clearTimeout(timer);
      qmp.off("event", onEvent);
      qmp.off("disconnect", onClose);
      resolve(event);
    };
    qmp.on("event", onEvent);
    qmp.once("disconnect", onClose);
  });
  return { promise, cancel: () => finish(null) };
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(temporary, text, { mode: 0o600 });
  await fsp.rename(temporary, file);
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

async function readPid(file: string): Promise<number | null> {
  try {
    const pid = Number.parseInt(await fsp.readFile(file, "utf8"), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * The pid is a live QEMU whose command line names this guest's state folder (so not a
 * recycled pid). Matched on `<id>/qmp.sock`, not the full path, so a data folder
 * reached through another path (a symlink, a bind mount) still matches.
 */
function isQemuOf(pid: number, id: string): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return path.basename(argv[0] ?? "").startsWith("qemu-system") && argv.some((a) => a.includes(`/${id}/qmp.sock`));
  } catch {
    return false;
  }
}

async function readSpec(file: string): Promise<GuestSpec | null> {
  try {
    const parsed = guestSpecSchema.safeParse(JSON.parse(await fsp.readFile(file, "utf8")));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** A guest's UEFI variables start as a copy of OVMF's template and are kept from then on. */
async function ensureEfiVars(file: string): Promise<void> {
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

async function readArgv(file: string): Promise<string[] | null> {
  try {
    const parsed: unknown = JSON.parse(await fsp.readFile(file, "utf8"));
    return Array.isArray(parsed) && parsed.every((a) => typeof a === "string") ? parsed : null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0); its /proc stat says "Z".
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

async function waitForPidExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

async function readTail(file: string, bytes = LOG_TAIL_BYTES): Promise<string> {
  try {
    const handle = await fsp.open(file, "r");
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - bytes);
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      return buffer.toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    return "";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
