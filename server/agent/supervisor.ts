/**
 * The guest supervisor: starts QEMU processes, watches them over QMP, stops them,
 * and finds them again after the agent itself restarts.
 *
 * QEMU runs in its own process group with its output in `qemu.log`, so killing or
 * restarting the agent never stops a guest. Every guest has a state folder holding
 * its QMP, VNC and serial sockets, pid file, QEMU log, serial log and `argv.json`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import { canDo, canTransition, type GuestAction, type GuestSpec, type GuestState, type GuestStatus } from "../domain/types";
import { QmpClient, type QmpEvent } from "../qemu/qmp";
import { buildQemuArgs, diskPath, guestFiles, isoPath, OVMF_VARS_TEMPLATE, QEMU_BINARY } from "../qemu/args";
import { guestSpecSchema } from "../domain/validation";
import type { AgentConfig } from "./config";

const START_TIMEOUT_MS = 30_000;
const FORCE_OFF_GRACE_MS = 3_000;
const EXIT_TIMEOUT_MS = 10_000;
const LOG_TAIL_BYTES = 4096;

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

  status(): GuestStatus {
    return {
      id: this.id,
      state: this.state,
      since: this.since,
      pid: this.pid,
      logTail: this.logTail,
      argv: this.argv,
      spec: this.spec,
    };
  }
}

export class Supervisor extends EventEmitter<{ state: [GuestStatus] }> {
  private readonly guests = new Map<string, SupervisedGuest>();
  /** Guests deleted since the agent started; a late start for one is refused. */
  private readonly forgotten = new Set<string>();

  constructor(private readonly config: AgentConfig) {
    super();
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

  /** The argument array this spec would run with on this host. */
  argvFor(spec: GuestSpec): string[] {
    return [QEMU_BINARY, ...buildQemuArgs(spec, this.layout(spec.id))];
  }

  private layout(id: string) {
    return {
      accelerator: this.config.accelerator,
      stateDir: this.stateDir(id),
      disksDir: this.config.disksDir,
      isoDir: this.config.isoDir,
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
    for (const disk of spec.disks) await mustExist(diskPath(this.layout(spec.id), disk.volume, disk.format), "disk");
    for (const cdrom of spec.cdroms) await mustExist(isoPath(this.layout(spec.id), cdrom.iso), `ISO ${cdrom.iso}`);

    const files = guestFiles(guest.stateDir);
    await fsp.mkdir(guest.stateDir, { recursive: true, mode: 0o700 });
    await this.cleanFiles(guest);
    if (spec.firmware === "uefi") await ensureEfiVars(files.efiVars);
    const argv = this.argvFor(spec);
    guest.argv = argv;
    guest.spec = spec;
    await fsp.writeFile(path.join(guest.stateDir, "argv.json"), JSON.stringify(argv));
    await fsp.writeFile(path.join(guest.stateDir, "spec.json"), JSON.stringify(spec));

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
      guest.pid = pid;
      this.guests.set(id, guest);
      if (isQemuOf(pid, id)) {
        try {
          const qmp = new QmpClient();
          await qmp.connect(files.qmp);
          this.watch(guest, qmp);
          await this.syncRunstate(guest);
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

  /** The VNC socket of a guest whose QEMU runs, for the console stream. */
  vncSocket(id: string): string {
    const guest = this.running(id);
    if (guest.state === "starting") throw new GuesthouseError("conflict", "This guest is still starting; try again in a moment.");
    return guestFiles(guest.stateDir).vnc;
  }
}

async function mustExist(file: string, what: string): Promise<void> {
  try {
    await fsp.access(file, fs.constants.R_OK);
  } catch {
    throw new GuesthouseError("not-found", `The ${what} is missing on the host. Check the image folder, or recreate it.`, file);
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
