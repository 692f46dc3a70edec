/**
 * Tasks: operations on images that take a while. Each one holds the images it
 * works on (a second task on any of them is refused, not interleaved), reports
 * progress, can be cancelled, and is remembered after it ends so a page opened
 * later still sees how it went. Changes are emitted as "task" events, which the
 * agent's event stream passes on.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import { GuesthouseError } from "../domain/errors";
import type { TaskKind, TaskStatus } from "../domain/types";
import { JobSlots } from "../slots";
import { Journal } from "./journal";
import { childEnv } from "./process";

/** Finished tasks kept in memory for pages that look later (the web keeps the full record). */
const KEEP_FINISHED = 200;
/** Lines of output kept per task. */
const LOG_LINES = 50;
/** Progress is passed on at most this often, and always when it moved by a whole per cent. */
const PROGRESS_EVERY_MS = 250;
/**
 * A running task is announced at least this often, even when its progress is unknown or
 * still, so a page hears from it well within a second whatever qemu-img is doing.
 */
const HEARTBEAT_MS = 500;

export interface TaskContext {
  readonly id: string;
  readonly signal: AbortSignal;
  /** 0 … 1. */
  progress(fraction: number): void;
  /** Says the task waits for a qemu-img slot (`ahead` jobs before it), or (null) that it has one. */
  waiting(ahead: number | null, of: number): void;
  log(line: string): void;
  /** What a cancel means for this task, shown as its result (default: nothing written was kept). */
  cancelled(message: string): void;
  /**
   * Where to make the new file `final` (an absolute path): a temporary name of this
   * task's own in the same folder, journaled before it exists. It is removed when the
   * task ends without `commit`, and by a restarted agent when the agent died first.
   */
  temporary(final: string): string;
  /** Puts the task's temporaries in place under their final names, all or none, never over an existing file. */
  commit(): Promise<void>;
  /** A process the task started (a restarted agent stops it if it outlived its agent). */
  spawned(pid: number): void;
}

export type TaskWork = (ctx: TaskContext) => Promise<string | null>;

interface Running {
  status: TaskStatus;
  /** Why it failed, as thrown: `run` passes it on with its own code. */
  error: GuesthouseError | null;
  abort: AbortController;
  lastEmit: number;
  done: Promise<TaskStatus>;
}


/** qemu-img processes that copy or read whole images (convert, full clone, check) at once, by default. */
export const DEFAULT_QEMU_IMG_JOBS = 2;
/**
 * qemu-img runs that touch metadata only (info, create, resize, snapshot, a linked
 * clone) have slots of their own: they take a second or two, and a guest's start or
 * a new guest must not queue behind a long conversion. They are bounded all the same.
 */
export const QEMU_IMG_QUICK_SLOTS = 4;

export class Tasks extends EventEmitter<{ task: [TaskStatus] }> {
  private readonly tasks = new Map<string, Running>();
  /** "pool/file" → the id of the task holding it. */
  private readonly held = new Map<string, string>();
  /** The host's long qemu-img jobs: every conversion, full copy and check takes one. */
  readonly jobs: JobSlots;
  /** The host's quick qemu-img runs (metadata only). */
  readonly quick = new JobSlots(QEMU_IMG_QUICK_SLOTS);

  /** What running tasks are making, on disk so a restarted agent can undo it (server/agent/journal.ts). */
  readonly journal: Journal;

  constructor(opts: { qemuImgJobs?: number; journal?: Journal } = {}) {
    super();
    this.jobs = new JobSlots(opts.qemuImgJobs ?? DEFAULT_QEMU_IMG_JOBS);
    this.journal = opts.journal ?? new Journal(null);
  }

  /** Which task (if any) holds this image now. */
  holder(target: string): TaskStatus | null {
    const id = this.held.get(target);
    return id ? (this.tasks.get(id)?.status ?? null) : null;
  }

  /**
   * Starts `work` as a task holding `targets` and returns at once. The targets are
   * claimed synchronously: two requests racing for one image get one task and one
   * "busy" refusal.
   */
  start(kind: TaskKind, title: string, targets: string[], work: TaskWork): { status: TaskStatus; done: Promise<TaskStatus> } {
    for (const target of targets) {
      const holder = this.holder(target);
      if (holder) {
        throw new GuesthouseError("conflict", `${target} is busy: ${holder.title} (${holder.kind}) is running. Wait for it to finish or cancel it.`);
      }
    }
    const id = `t${Date.now().toString(36)}${randomBytes(5).toString("hex")}`;
    const status: TaskStatus = { id, kind, title, targets, state: "running", progress: null, startedAt: Date.now(), finishedAt: null, message: null, log: [] };
    const abort = new AbortController();
    let cancelMessage = "Cancelled; nothing it had written was kept.";
    // Written down before any work: a journal that cannot be written refuses the task.
    try {
      this.journal.begin(id, kind, title);
    } catch (err) {
      throw new GuesthouseError("internal", `The agent could not write its task journal: ${(err as Error).message}`);
    }
    for (const target of targets) this.held.set(target, id);
    const running: Running = { status, error: null, abort, lastEmit: Date.now(), done: Promise.resolve(status) };
    this.tasks.set(id, running);
    this.emit("task", { ...status });

    const ctx: TaskContext = {
      id,
      signal: abort.signal,
      progress: (fraction) => {
        const next = Math.max(0, Math.min(1, fraction));
        const moved = status.progress === null || Math.floor(next * 100) !== Math.floor(status.progress * 100);
        status.progress = next;
        const now = Date.now();
        if (moved || now - running.lastEmit >= PROGRESS_EVERY_MS) {
          running.lastEmit = now;
          this.emit("task", { ...status, log: [...status.log] });
        }
      },
      waiting: (ahead, of) => {
        status.message =
          ahead === null ? null : `Waiting for a qemu-img slot: ${ahead === 0 ? "next in line" : `${ahead} ${ahead === 1 ? "job" : "jobs"} ahead`} (this host runs ${of} at once).`;
        running.lastEmit = Date.now();
        this.emit("task", { ...status, log: [...status.log] });
      },
      cancelled: (message) => {
        cancelMessage = message;
      },
      log: (line) => {
        status.log.push(line);
        if (status.log.length > LOG_LINES) status.log.splice(0, status.log.length - LOG_LINES);
      },
      temporary: (final) => this.journal.temporary(id, final),
      commit: () => this.journal.commit(id),
      spawned: (pid) => this.journal.spawned(id, pid),
    };

    // A heartbeat: pages hear from a running task at least every second, moving or not.
    const heartbeat = setInterval(() => {
      if (Date.now() - running.lastEmit >= HEARTBEAT_MS) {
        running.lastEmit = Date.now();
        this.emit("task", { ...status, log: [...status.log] });
      }
    }, HEARTBEAT_MS / 4);
    heartbeat.unref();
    running.done = (async () => {
      try {
        const message = await work(ctx);
        if (abort.signal.aborted) throw abort.signal.reason;
        status.state = "succeeded";
        status.progress = 1;
        status.message = message;
      } catch (err) {
        if (abort.signal.aborted) {
          status.state = "cancelled";
          status.message = cancelMessage;
        } else {
          status.state = "failed";
          running.error = err instanceof GuesthouseError ? err : new GuesthouseError("internal", `Unexpected failure: ${(err as Error).message}`);
          status.message = running.error.message;
        }
      } finally {
        clearInterval(heartbeat);
        try {
          this.journal.end(id);
        } catch (err) {
          console.error(`agent: could not close task ${id}'s journal entry:`, err);
        }
        status.finishedAt = Date.now();
        for (const target of targets) if (this.held.get(target) === id) this.held.delete(target);
        this.forgetOld();
        this.emit("task", { ...status, log: [...status.log] });
      }
      return { ...status, log: [...status.log] };
    })();
    return { status: { ...status }, done: running.done };
  }

  /** Runs a task and waits for it; a failure is thrown as the task's message. */
  async run(kind: TaskKind, title: string, targets: string[], work: TaskWork): Promise<TaskStatus> {
    const { status, done } = this.start(kind, title, targets, work);
    const final = await done;
    if (final.state === "failed") throw this.tasks.get(status.id)?.error ?? new GuesthouseError("qemu-failed", final.message ?? "The operation failed.");
    if (final.state === "cancelled") throw new GuesthouseError("conflict", "The operation was cancelled.");
    return final;
  }

  cancel(id: string): TaskStatus {
    const running = this.tasks.get(id);
    if (!running) throw new GuesthouseError("not-found", "There is no such task on this host.");
    if (running.status.state === "running") running.abort.abort(new GuesthouseError("conflict", "Cancelled."));
    return { ...running.status };
  }

  get(id: string): TaskStatus {
    const running = this.tasks.get(id);
    if (!running) throw new GuesthouseError("not-found", "There is no such task on this host.");
    return { ...running.status, log: [...running.status.log] };
  }

  list(): TaskStatus[] {
    return [...this.tasks.values()].map((t) => ({ ...t.status, log: [...t.status.log] }));
  }

  /** Waits until one task has ended (at once if it already has, or is unknown). */
  async ended(id: string): Promise<void> {
    await this.tasks.get(id)?.done;
  }

  private forgetOld(): void {
    const finished = [...this.tasks.values()].filter((t) => t.status.state !== "running");
    for (const t of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.tasks.delete(t.status.id);
  }
}

/**
 * Runs `qemu-img` in one of `slots` (waiting for its turn; a task says so meanwhile):
 * its messages go to the task's log, cancelling kills it (or takes it out of the
 * queue), and with `progress` the task learns how far it is (see below). Fails with
 * qemu-img's own reason, paths replaced by `scrub`.
 */
export async function runQemuImg(
  slots: JobSlots,
  args: string[],
  ctx: TaskContext | null,
  scrub: (text: string) => string = (t) => t,
  opts: { progress?: boolean; timeoutMs?: number } = {},
): Promise<string> {
  let queued = false;
  const release = await slots.take(ctx?.signal, (ahead) => {
    queued = true;
    ctx?.waiting(ahead, slots.size);
  });
  if (queued) ctx?.waiting(null, slots.size);
  try {
    return await spawnQemuImg(args, ctx, scrub, opts);
  } finally {
    release();
  }
}

function spawnQemuImg(
  args: string[],
  ctx: TaskContext | null,
  scrub: (text: string) => string,
  opts: { progress?: boolean; timeoutMs?: number },
): Promise<string> {
  return new Promise((resolve, reject) => {
    if (ctx?.signal.aborted) return reject(ctx.signal.reason);
    const child = spawn("qemu-img", args, { stdio: ["ignore", "pipe", "pipe"], env: childEnv({ LC_ALL: "C" }) });
    if (child.pid) ctx?.spawned(child.pid);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    // Progress lines "(12.34/100%)" (printed on SIGUSR1, to stderr) go to the task, not to the log.
    const takeProgress = (chunk: string): string => {
      if (!ctx || !opts.progress) return chunk;
      const last = [...chunk.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)].at(-1);
      if (last) ctx.progress(Number(last[1]) / 100);
      return chunk.replace(/^\s*\(\d+(?:\.\d+)?\/100%\)\s*$/gm, "");
    };
    child.stdout.on("data", (chunk: string) => {
      stdout += takeProgress(chunk);
      if (stdout.length > 16 * 1024 * 1024) child.kill("SIGKILL");
    });
    child.stderr.on("data", (chunk: string) => {
      stderr += takeProgress(chunk);
      if (stderr.length > 64 * 1024) stderr = stderr.slice(-64 * 1024);
    });
    // `-p` would print progress only at each whole per cent (minutes apart on a large
    // image). Without it, qemu-img prints its exact progress (to stderr) on SIGUSR1:
    // asked for four times a second, it reports at that pace whatever the size. The
    // signal is sent only once qemu-img has installed its handler (else it would die).
    // The first request goes out as soon as the handler is there (checked every 20 ms), so
    // even a conversion of a second or two reports how far it is.
    let lastPoke = 0;
    let handlerReady = false; // once installed, qemu-img keeps it: /proc is read until then only
    const poke =
      ctx && opts.progress && child.pid
        ? setInterval(() => {
            if (Date.now() - lastPoke < PROGRESS_EVERY_MS) return;
            if (!handlerReady && !(handlerReady = catchesUsr1(child.pid!))) return;
            lastPoke = Date.now();
            child.kill("SIGUSR1");
          }, 20)
        : null;
    const onAbort = () => child.kill("SIGTERM");
    ctx?.signal.addEventListener("abort", onAbort, { once: true });
    // A file that blocks on open (a FIFO, a terminal) must not hold up the page that asked.
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, opts.timeoutMs)
      : null;
    child.once("error", (err) => {
      if (timer) clearTimeout(timer);
      if (poke) clearInterval(poke);
      ctx?.signal.removeEventListener("abort", onAbort);
      reject(new GuesthouseError("qemu-failed", `qemu-img could not run: ${err.message}. Is the qemu-utils package installed?`));
    });
    child.once("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      if (poke) clearInterval(poke);
      ctx?.signal.removeEventListener("abort", onAbort);
      const messages = scrub(stderr).trim();
      for (const line of messages.split("\n").filter(Boolean)) ctx?.log(line);
      if (ctx?.signal.aborted) return reject(ctx.signal.reason);
      if (timedOut) return reject(new GuesthouseError("timeout", `qemu-img ${args[0]} did not finish within ${Math.round(opts.timeoutMs! / 1000)} s; the image could not be read.`));
      if (code === 0) return resolve(stdout);
      reject(new GuesthouseError("qemu-failed", qemuImgReason(messages, signal)));
    });
  });
}

/** Whether a process has a handler for SIGUSR1 (Linux: bit 9 of SigCgt in /proc/<pid>/status). */
function catchesUsr1(pid: number): boolean {
  try {
    const mask = /SigCgt:\s*([0-9a-f]+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return mask !== undefined && (BigInt(`0x${mask}`) & (1n << 9n)) !== 0n;
  } catch {
    return false;
  }
}

/** qemu-img's complaint in plain words: its prefix dropped, well-known causes explained. */
export function qemuImgReason(stderr: string, signal: NodeJS.Signals | null = null): string {
  const line = stderr.split("\n").map((l) => l.replace(/^qemu-img: /, "").trim()).filter(Boolean).at(-1);
  if (!line) return signal ? `qemu-img was stopped (${signal}).` : "qemu-img failed without saying why.";
  if (/Failed to get .*lock/i.test(stderr)) return "The image is in use by a running guest (QEMU holds its lock). Stop the guest first, or use the live operation.";
  if (/No space left on device/i.test(line)) return `The storage folder is full (${line}). Free some space or choose another folder.`;
  if (/Image is not in qcow2 format|Unknown.*format|not in .* format/i.test(line)) return `The file is not a valid image of that format: ${line}`;
  if (/Could not read (qcow2 )?header|Invalid argument|corrupt/i.test(line)) return `The image looks damaged or is not a disk image: ${line}`;
  return line;
}
