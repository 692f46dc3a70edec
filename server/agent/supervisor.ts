/**
 * The guest supervisor: starts QEMU processes, watches them over QMP, stops them,
 * and finds them again after the agent itself restarts.
 *
 * QEMU runs in its own process group with its output in `qemu.log`, so killing or
 * restarting the agent never stops a guest, and as a user of its own with nothing but
 * the descriptors the agent opened for it (server/agent/qemu-user.ts). Every guest has
 * a state folder holding its pid file, QEMU log, serial log (kept when the guest stops,
 * removed only when it is forgotten) and what server/agent/guest-state.ts keeps for
 * the next agent, and a run folder with QEMU's QMP, VNC and serial sockets.
 *
 * The guest's state follows QEMU's own run state (server/agent/run-state.ts). Disk
 * operations on a running guest are server/agent/guest-disks.ts; the host ports guests
 * take (TLS VNC, port forwards) server/agent/host-ports.ts.
 */
import { EventEmitter } from "node:events";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import {
  canDo,
  canTransition,
  isHalted,
  qemuLives,
  type DiskFormat,
  type DiskSpec,
  type GuestAction,
  type GuestSpec,
  type GuestState,
  type GuestStatus,
  type NicSpec,
  type VncTlsEndpoint,
} from "../domain/types";
import { QmpClient, type QmpEvent } from "../qemu/qmp";
import { buildQemuLaunch, guestFiles, nicId, QEMU_BINARY, secretPath, VNC_BASE_PORT, vncTlsPortOf, type EncryptedSecret, type GuestFiles, type QemuHostLayout } from "../qemu/args";
import { ISO_POOL, type AgentConfig } from "./config";
import { GuestDisks, mustHaveSecret } from "./guest-disks";
import { GuestNics } from "./guest-nics";
import { assertForwardsAllowed, VncTlsPorts } from "./host-ports";
import { checkRunState, onQmpEvent, type RunStateHooks } from "./run-state";
import { ensureEfiVars, startNics, startTable, SupervisedGuest } from "./guest-state";
import { logTail } from "./files";
import { encryptPassphrases, spawnQemu, writeMasterKey } from "./launch";
import { isQemuOf, killGroup, pidAlive, readPid, sleep, waitForPidExit } from "./process";
import { gidOfPid, lockRunDir, prepareRunDir, QemuUsers, uidOfPid } from "./qemu-user";
import { rotateSerialLog } from "./serial";
import { Storage } from "./storage";
import type { Networks } from "./networks/manager";
import { tapName } from "./networks/ports";
import { GuestCgroups } from "./cgroups";
import type { MetricsTarget } from "./metrics/sampler";
import { qemuTlsCopy } from "./tls";

const START_TIMEOUT_MS = 30_000;
const FORCE_OFF_GRACE_MS = 3_000;
const EXIT_TIMEOUT_MS = 10_000;

export class Supervisor extends EventEmitter<{ state: [GuestStatus] }> {
  private readonly guests = new Map<string, SupervisedGuest>();
  /** When each guest that is no longer supervised stopped (ms since the epoch), so its status says so. */
  private readonly stoppedAt = new Map<string, number>();
  /** Guests deleted since the agent started; a late start for one is refused. */
  private readonly forgotten = new Set<string>();

  /** Where QEMU's disks and ISOs are: the same checks as every other use of a name (Storage.existing). */
  private readonly storage: Storage;
  /** Hot-plug, unplug, online resize and live snapshots of the guests' disks. */
  private readonly disks: GuestDisks;
  /** Network cards plugged into and out of running guests. */
  private readonly nics: GuestNics;
  /** Who guests' QEMUs run as. */
  readonly users: QemuUsers;
  /** The TLS VNC ports running guests hold. */
  private readonly vncTlsPorts: VncTlsPorts;
  /** Each guest's cgroup of its own, for its pressure figures (none on a host without cgroup v2). */
  readonly cgroups: GuestCgroups;
  /** What the run-state code (server/agent/run-state.ts) may do here. */
  private readonly runStateHooks: RunStateHooks = {
    isCurrent: (guest) => this.guests.get(guest.id) === guest,
    transition: (guest, next) => this.transition(guest, next),
    finishUnplug: async (guest, device) => {
      await this.disks.finishUnplug(guest, device);
      await this.nics.finishUnplug(guest, device);
    },
  };

  constructor(
    private readonly config: AgentConfig,
    /** The agent's managed networks, whose ports a guest's NICs on them become (none: such guests are refused). */
    private readonly networks: Pick<Networks, "plug" | "unplug"> | null = null,
  ) {
    super();
    this.storage = new Storage(config);
    this.users = QemuUsers.forAgent(config.qemuUids);
    this.vncTlsPorts = new VncTlsPorts(config.vncTls, () => this.guests.values());
    this.cgroups = GuestCgroups.detect(config.cgroup);
    this.disks = new GuestDisks({
      guest: (id) => this.guests.get(id),
      userOf: (pool, file) => this.userOf(pool, file),
      mustBeImage: (pool, file, what, format) => this.mustBeImage(pool, file, what, format),
      layout: (id) => this.layout(id),
      changed: (guest) => this.emit("state", guest.status()),
    });
    this.nics = new GuestNics({
      guest: (id) => this.guests.get(id),
      networks,
      assertForwards: (spec) => assertForwardsAllowed(spec, config.forwards),
      forwardAddress: config.forwards.address ?? null,
      changed: (guest) => this.emit("state", guest.status()),
    });
  }

  /**
   * A disk or ISO QEMU is about to open: a regular file inside its storage folder (no
   * symlink leading out) and, for a disk, one that names no file but images in the
   * storage folders (its backing chain, no external data file or VMDK extents; read
   * from the headers, as QEMU will open it in `format`), or a clear refusal before QEMU
   * is asked.
   */
  private async mustBeImage(pool: string, file: string, what: string, format: DiskFormat | null = null): Promise<void> {
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

  /** Where a guest's QEMU makes its sockets (a guest an older agent started has them in its state folder). */
  private runDirOf(id: string): string {
    return this.guests.get(id)?.runDir ?? path.join(this.config.runDir, id);
  }

  /** A guest's files, wherever its QEMU has them. */
  filesOf(id: string): GuestFiles {
    return guestFiles(this.stateDir(id), this.runDirOf(id));
  }

  list(): GuestStatus[] {
    return [...this.guests.values()].map((g) => g.status());
  }

  status(id: string): GuestStatus {
    return this.guests.get(id)?.status() ?? { id, state: "stopped", since: this.stoppedAt.get(id) ?? 0, pid: null, logTail: null, argv: null, spec: null };
  }

  /**
   * The argument array this spec would run with on this host. With TLS VNC on, its
   * port is the first one no other guest holds now; the start takes whichever is free then.
   */
  async argvFor(spec: GuestSpec): Promise<string[]> {
    const running = this.guests.get(spec.id)?.vncTls?.port;
    // Encrypted disks' passphrases as a start encrypts them, with a key made (and dropped) for this view.
    const secrets = await encryptPassphrases(spec, this.config.secretsDir);
    return [QEMU_BINARY, ...buildQemuLaunch(spec, this.layout(spec.id, running ?? this.vncTlsPorts.firstFree(), secrets?.secrets)).args];
  }

  /** Where things are for QEMU; `vncTlsPort` adds the TLS VNC display (when TLS VNC is on). */
  private layout(id: string, vncTlsPort?: number, secrets?: Record<string, EncryptedSecret>): QemuHostLayout {
    const tls = this.config.vncTls;
    return {
      accelerator: this.config.accelerator,
      stateDir: this.stateDir(id),
      runDir: this.runDirOf(id),
      ...(secrets ? { secrets } : {}),
      pools: this.config.pools,
      secretsDir: this.config.secretsDir,
      isoDir: this.config.isoDir,
      forwardAddress: this.config.forwards.address,
      // QEMU's copy of the credentials, in its run folder (qemuTlsCopy).
      vncTls: tls && vncTlsPort !== undefined ? { dir: path.join(this.runDirOf(id), "tls"), address: tls.address, display: vncTlsPort - VNC_BASE_PORT } : null,
    };
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
    const guest = new SupervisedGuest(spec.id, this.stateDir(spec.id), path.join(this.config.runDir, spec.id));
    this.guests.set(spec.id, guest);
    this.emit("state", guest.status());
    try {
      await this.spawnQemu(guest, spec);
      return guest.status();
    } catch (err) {
      guest.aborted = true;
      await this.killQuietly(guest);
      await this.cleanFiles(guest);
      await this.cgroups.remove(spec.id);
      await this.unplugNics(guest);
      if (this.guests.get(spec.id) === guest) {
        this.guests.delete(spec.id);
        this.stoppedAt.set(spec.id, Date.now());
      }
      this.emit("state", this.status(spec.id));
      throw err;
    }
  }

  private async spawnQemu(guest: SupervisedGuest, spec: GuestSpec): Promise<void> {
    for (const disk of spec.disks) {
      await this.mustBeImage(disk.pool, disk.file, `disk ${disk.pool}/${disk.file}`, disk.format);
      for (const base of disk.backing) await this.mustBeImage(base.pool, base.file, `base image ${base.pool}/${base.file} of ${disk.file}`, base.format);
      if (disk.encrypted) await mustHaveSecret(secretPath(this.layout(spec.id), disk.volume), disk);
    }
    for (const cdrom of spec.cdroms) await this.mustBeImage(ISO_POOL, cdrom.iso, `ISO ${cdrom.iso}`);
    assertForwardsAllowed(spec, this.config.forwards);
    const taps = await this.plugNics(guest, spec);

    const files = guest.files;
    await fsp.mkdir(guest.stateDir, { recursive: true, mode: 0o700 });
    await this.cleanFiles(guest);
    // The serial log is kept across starts (QEMU appends to it): rotate it first if it is full.
    if (spec.serial) await rotateSerialLog(files, this.config.serialLogBytes);
    if (spec.firmware === "uefi") await ensureEfiVars(files.efiVars);
    // A uid no other guest's QEMU has: claimed before any await, so two starts never share one.
    guest.identity = this.users.claim([...this.guests.values()].flatMap((g) => (g !== guest && g.identity ? [g.identity.uid] : [])));
    const vncTlsPort = await this.vncTlsPorts.claim(guest);
    const secrets = await encryptPassphrases(spec, this.config.secretsDir);
    const launch = buildQemuLaunch(spec, { ...this.layout(spec.id, vncTlsPort, secrets?.secrets), taps });
    const argv = [QEMU_BINARY, ...launch.args];
    guest.argv = argv;
    guest.spec = spec;
    guest.disks = startTable(spec.disks, argv, launch);
    guest.nics = startNics(spec.nics);
    await fsp.writeFile(path.join(guest.stateDir, "argv.json"), JSON.stringify(argv));
    await guest.saveDisks();
    await guest.saveNics();
    await guest.setPauseRequested(false);
    await guest.setLastIoError(null);
    await prepareRunDir(guest.runDir, guest.identity);
    if (secrets) await writeMasterKey(files.masterKey, secrets.masterKey, guest.identity);
    if (this.config.vncTls && vncTlsPort !== undefined) await qemuTlsCopy(this.config.vncTls.dir, path.join(guest.runDir, "tls"), guest.identity);

    const child = spawnQemu(argv, launch.descriptors, guest.identity, files.log, launch.taps);
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
    // The agent's record of the pid (QEMU writes no pid file): an agent started later finds the guest by it.
    if (guest.pid !== null) await fsp.writeFile(files.pid, `${guest.pid}\n`, { mode: 0o600 });
    // Its own cgroup, before any guest instruction runs (-S), so its pressure counts from the start.
    if (guest.pid !== null) await this.cgroups.place(spec.id, guest.pid);

    const connected = this.connectWhenReady(guest, files.qmp);
    const outcome = await Promise.race([connected.then(() => "ready" as const), exit.then((e) => e)]);
    if (outcome !== "ready") {
      connected.catch(() => {});
      const tail = await logTail(files.log);
      const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with code ${outcome.code}`;
      throw new GuesthouseError("qemu-failed", `QEMU did not start: it ${how}. ${tail.trim() || "It printed nothing."}`, argv.join(" "));
    }
    guest.exited = exit.then(() => this.afterExit(guest));
    // QEMU has made its sockets and read its secrets, and no guest instruction has run
    // (-S): the run folder becomes the agent's, the key goes, and the guest may run.
    await lockRunDir(guest.runDir);
    await fsp.rm(files.masterKey, { force: true });
    await fsp.rm(path.join(guest.runDir, "tls"), { recursive: true, force: true });
    await guest.qmp!.execute("cont");
    await checkRunState(guest, this.runStateHooks);
  }

  /** Ports on their managed networks for the guest's NICs there (taken away again when it stops). */
  private async plugNics(guest: SupervisedGuest, spec: GuestSpec): Promise<QemuHostLayout["taps"]> {
    const managed = spec.nics.flatMap((nic, index) =>
      nic.mode === "managed" ? [{ index, mac: nic.mac, network: nic.network, ...(nic.vlan !== undefined ? { vlan: nic.vlan } : {}), ...(nic.bandwidth ? { bandwidth: nic.bandwidth } : {}) }] : [],
    );
    if (managed.length === 0) return {};
    if (!this.networks) throw new GuesthouseError("conflict", "This agent runs no managed networks; put the guest's cards on user-mode networking.");
    guest.plugged = true;
    const plugged = await this.networks.plug({ id: spec.id, name: spec.name }, managed);
    return Object.fromEntries(
      plugged.map((p) => [p.index, { tap: p.tap, bridge: p.bridge, ...(p.vlan !== undefined ? { vlan: p.vlan } : {}), ...(p.bandwidth?.inMbit ? { inMbit: p.bandwidth.inMbit } : {}) }]),
    );
  }

  /** The guest's ports go from their networks (its taps went with its QEMU). */
  private async unplugNics(guest: SupervisedGuest): Promise<void> {
    if (!guest.plugged || !this.networks) return;
    guest.plugged = false;
    await this.networks.unplug(guest.id).catch((err) => console.error(`agent: guest ${guest.id}: its network ports could not be taken away:`, err));
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
    qmp.on("event", (event: QmpEvent) => onQmpEvent(guest, event, this.runStateHooks));
    qmp.once("disconnect", () => {
      guest.qmp = null;
      // QEMU closes QMP only when it exits (or the agent closes it on purpose).
      if (!guest.child && guest.pid !== null && !guest.exited) this.watchPidExit(guest);
    });
  }

  private async afterExit(guest: SupervisedGuest): Promise<void> {
    if (this.guests.get(guest.id) !== guest) return;
    await guest.qmp?.close();
    await this.cleanFiles(guest);
    await this.cgroups.remove(guest.id);
    await this.unplugNics(guest);
    guest.pid = null;
    guest.child = null;
    guest.vncTls = null;
    guest.runState = null;
    guest.haltReason = null;
    await guest.setPauseRequested(false).catch(() => {});
    await guest.setLastIoError(null).catch(() => {});
    if (guest.exitExpected) {
      this.transition(guest, "stopped");
      this.guests.delete(guest.id);
      this.stoppedAt.set(guest.id, guest.since);
      if (guest.restartWith) {
        const spec = guest.restartWith;
        this.start(spec).catch((err) => console.error(`agent: guest ${guest.id} did not come back after its reboot:`, err));
      }
    } else {
      guest.logTail = await logTail(guest.files.log);
      this.transition(guest, "crashed");
    }
  }

  /** A guest whose QEMU lives (any state but crashed; stopped guests are not kept). */
  private running(id: string): SupervisedGuest {
    const guest = this.guests.get(id);
    if (!guest || !qemuLives(guest.state)) throw new GuesthouseError("conflict", "This guest is not running.");
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

  /**
   * Hard reset, like pressing the reset button; the guest keeps its QEMU process. A
   * guest QEMU had halted runs again from its firmware (QEMU needs a reset before it
   * continues after an internal error or a panic); a paused one stays paused.
   */
  async reset(id: string): Promise<GuestStatus> {
    const guest = this.forAction(id, "reset");
    const halted = isHalted(guest.state);
    await guest.qmp.execute("system_reset");
    if (halted) {
      await guest.setPauseRequested(false);
      await guest.qmp.execute("cont");
    }
    await checkRunState(guest, this.runStateHooks);
    return guest.status();
  }

  /** Pauses the vCPUs; resolves once QEMU reports the guest stopped. */
  async pause(id: string): Promise<GuestStatus> {
    const guest = this.forAction(id, "pause");
    // Before the command: QEMU's STOP event must find the pause already asked for.
    await guest.setPauseRequested(true);
    try {
      await guest.qmp.execute("stop");
    } catch (err) {
      await guest.setPauseRequested(false);
      throw err;
    }
    await checkRunState(guest, this.runStateHooks);
    return guest.status();
  }

  /**
   * Lets the vCPUs go on: after a person's pause, or after QEMU halted the guest for a
   * reason it can continue from (a disk error retries the failed request; a guest that
   * suspended itself is woken).
   */
  async resume(id: string): Promise<GuestStatus> {
    const guest = this.forAction(id, "resume");
    await guest.qmp.execute(guest.runState === "suspended" ? "system_wakeup" : "cont");
    await guest.setPauseRequested(false);
    await checkRunState(guest, this.runStateHooks);
    return guest.status();
  }

  /**
   * Sets a network card's link up or down while the guest runs (QMP set_link): down is a
   * pulled cable, the guest sees no carrier and nothing passes. Not kept across starts.
   */
  async setLink(id: string, index: number, up: boolean): Promise<void> {
    const guest = this.running(id);
    if (!guest.qmp) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest; force it off instead.");
    const count = guest.spec?.nics.length ?? 0;
    if (!Number.isInteger(index) || index < 0 || index >= count) throw new GuesthouseError("not-found", `This guest has no network card ${index + 1} (it has ${count}).`);
    // A card plugged in live has its own device id (the card table says which); nic<i> is the start's.
    await guest.qmp.execute("set_link", { name: this.nics.deviceOf(guest, index) ?? nicId(index), up });
  }

  /** Forces a halted guest's QEMU off and starts it afresh with `spec` (pending changes apply). */
  async restart(spec: GuestSpec): Promise<GuestStatus> {
    this.forAction(spec.id, "restart");
    await this.forceOff(spec.id);
    return this.start(spec);
  }

  /**
   * The guest whose QEMU has this image open now (running, paused, halted, starting,
   * shutting down: anything but crashed), by the spec it was started with.
   */
  userOf(pool: string, file: string): { guestId: string; volume: string } | null {
    for (const guest of this.guests.values()) {
      if (guest.state === "crashed") continue;
      const disk = guest.spec?.disks.find((d) => d.pool === pool && d.file === file);
      if (disk) return { guestId: guest.id, volume: disk.volume };
    }
    return null;
  }

  /** Grows a disk of a running guest (QMP block_resize); the guest sees the new size at once. */
  resize(id: string, volume: string, bytes: number): Promise<void> {
    return this.disks.resize(id, volume, bytes);
  }

  /** Internal snapshots of a running (or paused) guest with its memory (see GuestDisks.snapshot). */
  snapshot(id: string, op: "create" | "revert" | "delete", name: string): Promise<void> {
    return this.disks.snapshot(id, op, name);
  }

  /** Plugs a disk into a running guest (see GuestDisks.attach). */
  attachDisk(id: string, disk: DiskSpec): Promise<GuestStatus> {
    return this.disks.attach(id, disk);
  }

  /** Unplugs a disk from a running guest (see GuestDisks.detach). */
  detachDisk(id: string, volume: string): Promise<GuestStatus> {
    return this.disks.detach(id, volume);
  }

  /** Plugs a network card into a running guest (see GuestNics.plug). */
  plugNic(id: string, nic: NicSpec): Promise<GuestStatus> {
    return this.nics.plug(id, nic);
  }

  /** Unplugs a network card from a running guest, by MAC (see GuestNics.unplug). */
  unplugNic(id: string, mac: string): Promise<GuestStatus> {
    return this.nics.unplug(id, mac);
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
    this.stoppedAt.delete(id);
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
      const pid = await readPid(guestFiles(stateDir, stateDir).pid);
      if (pid === null) continue;
      // An older agent's QEMU made its sockets in the state folder.
      const runDir = path.join(this.config.runDir, id);
      const guest = new SupervisedGuest(id, stateDir, fs.existsSync(path.join(runDir, "qmp.sock")) ? runDir : stateDir);
      const files = guest.files;
      await guest.load();
      guest.pid = pid;
      // Whatever ports it has on managed networks go when it stops (none: nothing to do).
      guest.plugged = this.networks !== null;
      const uid = uidOfPid(pid);
      guest.identity = uid !== null && uid !== process.getuid?.() ? { uid, gid: gidOfPid(pid) ?? uid } : null;
      const vncTlsPort = vncTlsPortOf(guest.argv);
      // Its QEMU keeps the display it started with, even if TLS VNC was turned off since.
      if (vncTlsPort !== null) guest.vncTls = { host: this.config.vncTls?.connectHost ?? os.hostname(), port: vncTlsPort };
      this.guests.set(id, guest);
      if (isQemuOf(pid, id)) {
        try {
          const qmp = new QmpClient();
          await qmp.connect(files.qmp);
          this.watch(guest, qmp);
          await checkRunState(guest, this.runStateHooks);
          await this.disks.reconcile(guest as SupervisedGuest & { qmp: QmpClient }).catch((err: unknown) =>
            console.error(`agent: guest ${id}: checking its unplugged disks failed:`, err),
          );
          await this.nics.reconcile(guest as SupervisedGuest & { qmp: QmpClient }).catch((err: unknown) =>
            console.error(`agent: guest ${id}: checking its unplugged network cards failed:`, err),
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
      guest.logTail = await logTail(files.log);
      await this.cleanFiles(guest);
      await this.cgroups.remove(id);
      this.transition(guest, "crashed");
    }
  }

  /** The guests whose QEMU runs and answers QMP, with what the metrics read of each (server/agent/metrics/). */
  metricsTargets(): MetricsTarget[] {
    return [...this.guests.values()].flatMap((g) => {
      if (!qemuLives(g.state) || g.pid === null || !g.qmp || !g.spec) return [];
      const spec = g.spec;
      const specDisks = new Map(spec.disks.map((d) => [d.volume, d]));
      const managed = new Set(spec.nics.filter((n) => n.mode === "managed").map((n) => n.mac.toLowerCase()));
      return [
        {
          id: g.id,
          pid: g.pid,
          qmp: g.qmp,
          vcpus: spec.vcpus,
          memory: spec.memoryMiB * 1024 * 1024,
          disks: Object.entries(g.disks.disks).flatMap(([volume, plugged]) => {
            const disk = specDisks.get(volume);
            const pool = disk ? this.config.pools[disk.pool] : undefined;
            if (!disk || !pool || plugged.detaching) return [];
            return [{ volume, names: [plugged.id, ...(plugged.device ? [plugged.device] : [])], file: path.join(pool, disk.file) }];
          }),
          nics: g.nics.nics.filter((n) => !n.detaching).map((n) => ({ mac: n.mac, tap: managed.has(n.mac) ? tapName(g.id, n.slot) : null })),
        },
      ];
    });
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

  /** Removes what a QEMU run leaves: its run folder (sockets), pid file and last screen; logs stay. */
  private async cleanFiles(guest: SupervisedGuest): Promise<void> {
    const files = guest.files;
    // An older agent's guest has its sockets in the state folder, which stays.
    if (guest.runDir !== guest.stateDir) await fsp.rm(guest.runDir, { recursive: true, force: true });
    await Promise.all([files.qmp, files.qmpFds, files.vnc, files.serial, files.pid, files.screen].map((f) => fsp.rm(f, { force: true })));
  }

  /**
   * A guest whose QEMU runs (running, paused, halted or shutting down; not still
   * starting), for its consoles, screenshots and pastes: its files (VNC and serial
   * sockets, serial log), the spec it runs and its QMP connection.
   */
  consoleOf(id: string): ConsoleTarget {
    const guest = this.running(id);
    if (guest.state === "starting") throw new GuesthouseError("conflict", "This guest is still starting; try again in a moment.");
    if (!guest.qmp) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest; force it off instead.");
    return { id, state: guest.state, stateDir: guest.stateDir, files: guest.files, spec: guest.spec, qmp: guest.qmp, vncTls: guest.vncTls, argv: guest.argv };
  }

  /** The ids and files of the guests whose QEMU runs now (for the serial log's rotation). */
  runningGuests(): Array<{ id: string; files: GuestFiles }> {
    return [...this.guests.values()].filter((g) => g.pid !== null && qemuLives(g.state)).map((g) => ({ id: g.id, files: g.files }));
  }
}

/** What the console modules (server/agent/console.ts) need of a running guest. */
export interface ConsoleTarget {
  id: string;
  state: GuestState;
  stateDir: string;
  files: GuestFiles;
  spec: GuestSpec | null;
  qmp: QmpClient;
  /** The command line its QEMU runs with (the screenshots look for the screen's fd set there). */
  argv: string[] | null;
  /** Its TLS VNC endpoint, when its QEMU has one. */
  vncTls: VncTlsEndpoint | null;
}
