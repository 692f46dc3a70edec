/**
 * A guest's serial port: one live stream shared by every viewer, and a log of all it
 * printed that is kept, bounded and rotated.
 *
 * The port. QEMU's chardev socket (`serial.sock`, server=on) takes ONE client at a
 * time. A SerialHub is that client: it connects when the first viewer attaches and
 * disconnects when the last one leaves. What the guest prints goes to every viewer;
 * what any viewer types goes to the guest (a viewer typing faster than the guest reads
 * waits). The port is never paused for a viewer: a viewer more than MAX_BEHIND_BYTES
 * behind is disconnected (it can read the log and attach again), so one frozen browser
 * tab cannot stall the guest for the others. A viewer joining first gets the last
 * REPLAY_BYTES the port printed (from the log when the hub was just opened), cut at a
 * line start, so a guest waiting at a prompt shows it instead of an empty terminal.
 *
 * The log. QEMU itself writes everything the port prints to `serial.log` (chardev
 * `logfile=…,logappend=on`, whether or not anyone is attached), and opens it with
 * O_APPEND (checked on QEMU 7.2: /proc/<pid>/fdinfo shows flags 02102001), so its next
 * write always lands at the file's end, wherever that is now. That lets the agent rotate
 * the log under a running QEMU without losing a byte: it copies the log's whole blocks
 * to `serial.log.1` and cuts them out of the log in place (fallocate's collapse-range,
 * ext4 and XFS); the kernel orders that cut with QEMU's appends, so what QEMU writes
 * meanwhile stays in the log. Where the file system cannot cut (tmpfs, …) the agent
 * falls back to copy-then-truncate, which, like logrotate's copytruncate, can lose what
 * QEMU writes in the instant between the two. Rotation happens at start and every
 * ROTATE_EVERY_MS while the guest runs, once the log reaches the configured size. Both
 * files stay after the guest stops; forgetting the guest removes its folder and them.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import { promisify } from "node:util";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GuesthouseError } from "../domain/errors";
import type { guestFiles } from "../qemu/args";
import { readTail } from "./files";
import { childEnv } from "./process";
import type { Supervisor } from "./supervisor";
import { KeyedTurns } from "./turns";

type GuestFiles = Pick<ReturnType<typeof guestFiles>, "serial" | "serialLog" | "serialLogOld">;

/** How often running guests' serial logs are checked for rotation. */
export const ROTATE_EVERY_MS = 2_000;
/** A viewer this far behind the port is disconnected instead of slowing everyone down. */
export const MAX_BEHIND_BYTES = 1024 * 1024;
/** How long a viewer has to take the last of the output once the port closed. */
const CLOSE_GRACE_MS = 10_000;
/** How long connecting to QEMU's serial socket may take. */
const CONNECT_TIMEOUT_MS = 5_000;
/** How much of the latest output a joining viewer is shown first. */
export const REPLAY_BYTES = 8 * 1024;

/**
 * Terminal queries, which a replay must not repeat: the viewer's terminal would answer
 * them again, and its answers would reach the guest as if typed (device attributes,
 * status and cursor position reports, DECRQM, window reports, XTVERSION, DECRQSS, OSC
 * colour queries). They were answered when the guest first printed them.
 */
// eslint-disable-next-line no-control-regex
const TERMINAL_QUERIES = /\x1b\[[>=?]?[\d;]*[cn]|\x1b\[\??[\d;]*\$p|\x1b\[[\d;]*t|\x1b\[>\d*q|\x1bP\$q[^\x1b]*\x1b\\|\x1b\][\d;]*;\?(?:\x07|\x1b\\)/g;

/**
 * The part of the latest output worth replaying to a viewer: all of it, or, when older
 * output was cut off in front of it, from the first line start on (no half line, half
 * escape sequence or half UTF-8 character), without terminal queries. A replay is the
 * end of what the port printed, not a transcript: right after a rotation it holds only
 * what followed it, and output printed while the first viewer's connection was being
 * made (a few milliseconds) is in the log but in neither the replay nor the stream.
 */
export function replayOf(recent: Buffer, cut: boolean): Buffer {
  let text = recent.toString("latin1"); // one char per byte: the regular expression cannot split a UTF-8 sequence
  if (cut) {
    const newline = text.indexOf("\n");
    text = newline === -1 ? "" : text.slice(newline + 1);
  }
  return Buffer.from(text.replace(TERMINAL_QUERIES, ""), "latin1");
}

// ---------------------------------------------------------------------------------------------
// The log

/** Rotation and reading of one log take turns (by path), so a reader never sees a half-rotated pair. */
const logTurns = new KeyedTurns<string>();

/**
 * Moves the log's contents to `serial.log.1` (replacing the older part) and empties it,
 * if it has reached `limitBytes`. Resolves true when it rotated.
 */
export function rotateSerialLog(files: GuestFiles, limitBytes: number): Promise<boolean> {
  return logTurns.run(files.serialLog, async () => {
    let size: number;
    try {
      size = (await fsp.stat(files.serialLog)).size;
    } catch {
      return false; // no log yet
    }
    if (size < limitBytes) return false;
    if (await rotateByCutting(files)) return true;
    await fsp.copyFile(files.serialLog, files.serialLogOld);
    await fsp.truncate(files.serialLog, 0);
    return true;
  });
}

const execFileAsync = promisify(execFile);

/**
 * Rotation without a window: the log's whole file-system blocks go to `serial.log.1`,
 * then are cut out of the log in place (`fallocate --collapse-range`). What QEMU appends
 * meanwhile is kept, in order, after the cut; less than a block of older output stays
 * in front of it. False, with nothing changed, where the file system cannot cut.
 */
async function rotateByCutting(files: GuestFiles): Promise<boolean> {
  const { size, blksize } = await fsp.stat(files.serialLog);
  // Collapse-range takes whole blocks and must leave at least one byte after the cut.
  const cut = Math.floor((size - 1) / blksize) * blksize;
  if (cut <= 0) return false;
  const part = `${files.serialLogOld}.part`;
  // Streamed: the limit may be large, and the agent's memory stays flat.
  await pipeline(fs.createReadStream(files.serialLog, { start: 0, end: cut - 1 }), fs.createWriteStream(part, { mode: 0o600 }));
  try {
    await execFileAsync("fallocate", ["--collapse-range", "--offset", "0", "--length", String(cut), files.serialLog], { env: childEnv(), timeout: 10_000 });
  } catch {
    await fsp.rm(part, { force: true });
    return false;
  }
  await fsp.rename(part, files.serialLogOld);
  return true;
}

/**
 * Everything the serial port printed that is still kept: `serial.log.1`, then
 * `serial.log`. Fails with not-found when the guest never ran with a serial port here.
 * A part can exceed the limit by what the guest printed between two checks; should a
 * runaway guest make it much larger, only its end is read (4 × the limit, at least 1 MiB).
 */
export function readSerialLog(files: GuestFiles, limitBytes: number): Promise<Buffer> {
  const partMax = Math.max(4 * limitBytes, 2 ** 20);
  return logTurns.run(files.serialLog, async () => {
    const parts = await Promise.all([files.serialLogOld, files.serialLog].map((f) => readTail(f, partMax)));
    if (parts.every((p) => p === null)) {
      throw new GuesthouseError("not-found", "This guest has no serial log yet: it has not run on this host with a serial port.");
    }
    return Buffer.concat(parts.filter((p): p is Buffer => p !== null));
  });
}

/** Checks the serial logs of running guests every ROTATE_EVERY_MS and rotates the full ones. */
export class SerialLogRotation {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly supervisor: Pick<Supervisor, "runningGuests">,
    private readonly limitBytes: number,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), ROTATE_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const guest of this.supervisor.runningGuests()) {
        await rotateSerialLog(guest.files, this.limitBytes).catch((err) =>
          console.error(`agent: guest ${guest.id}: rotating its serial log failed:`, err),
        );
      }
    } finally {
      this.busy = false;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The live port

type HubState = "connecting" | "open" | "closed";

/**
 * The agent's one connection to a guest's serial socket, shared by its viewers.
 * connecting → open → closed; a closed hub is never reused (the next viewer gets a new one).
 */
class SerialHub {
  state: HubState = "connecting";
  private readonly port: net.Socket;
  private readonly viewers = new Set<Duplex>();
  /** Viewers promised a place (their upgrade is being answered): the port stays open for them. */
  private reserved = 0;
  /** The latest output (at most REPLAY_BYTES), and whether older output was cut off in front of it. */
  private recent: Buffer = Buffer.alloc(0);
  private recentCut = false;
  readonly ready: Promise<void>;

  constructor(
    socketPath: string,
    logPath: string | null,
    private readonly onClosed: () => void,
  ) {
    this.port = new net.Socket();
    this.ready = (async () => {
      // What the guest printed while nobody watched is only in the log: its end seeds the replay.
      const tail = logPath ? await readTail(logPath, REPLAY_BYTES + 1).catch(() => null) : null;
      if (tail) this.remember(tail);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => this.port.destroy(new Error("no answer")), CONNECT_TIMEOUT_MS);
        this.port.once("connect", () => {
          clearTimeout(timer);
          if (this.state === "connecting") this.state = "open";
          resolve();
        });
        this.port.once("error", (err) => {
          clearTimeout(timer);
          reject(new GuesthouseError("qemu-failed", `The guest's serial port is not reachable: ${err.message}`));
        });
        this.port.connect({ path: socketPath });
      });
    })();
    this.ready.catch(() => {});
    this.port.on("data", (chunk: Buffer) => this.broadcast(chunk));
    this.port.on("error", () => this.close());
    this.port.on("close", () => this.close());
  }

  /** Keeps the port open for a viewer about to attach; release it with attach() or unreserve(). */
  reserve(): void {
    this.reserved++;
  }

  unreserve(): void {
    this.reserved--;
    this.closeIfUnused();
  }

  attach(viewer: Duplex, head: Buffer): void {
    this.reserved--;
    if (this.state !== "open") {
      viewer.destroy();
      this.closeIfUnused();
      return;
    }
    const replay = replayOf(this.recent, this.recentCut);
    if (replay.length) viewer.write(replay);
    this.viewers.add(viewer);
    if (head.length) this.port.write(head);
    viewer.on("data", (chunk: Buffer) => {
      // Typing faster than the guest reads (a big paste) waits for the port, not in memory.
      if (this.state === "open" && !this.port.write(chunk)) {
        viewer.pause();
        this.port.once("drain", () => viewer.resume());
      }
    });
    const leave = () => {
      if (!this.viewers.delete(viewer)) return;
      viewer.destroy();
      this.closeIfUnused();
    };
    viewer.once("close", leave);
    viewer.once("error", leave);
    viewer.once("end", leave);
  }

  private remember(chunk: Buffer): void {
    const all = this.recent.length ? Buffer.concat([this.recent, chunk]) : chunk;
    if (all.length > REPLAY_BYTES) {
      this.recent = Buffer.from(all.subarray(all.length - REPLAY_BYTES));
      this.recentCut = true;
    } else {
      this.recent = all === chunk ? Buffer.from(chunk) : all;
    }
  }

  private broadcast(chunk: Buffer): void {
    this.remember(chunk);
    for (const viewer of this.viewers) {
      if (viewer.writableLength > MAX_BEHIND_BYTES) {
        // Too far behind: drop it rather than pause the guest's port for everyone.
        viewer.destroy();
        continue;
      }
      viewer.write(chunk);
    }
  }

  private closeIfUnused(): void {
    if (this.viewers.size === 0 && this.reserved <= 0) this.close();
  }

  /** Closes the port; viewers get what was already sent, then the end of their stream. */
  close(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.onClosed();
    this.port.end();
    for (const viewer of this.viewers) {
      // Everything already sent is delivered, then the stream is closed (or given up on).
      viewer.end();
      viewer.once("finish", () => viewer.destroy());
      setTimeout(() => viewer.destroy(), CLOSE_GRACE_MS).unref();
    }
    this.viewers.clear();
  }
}

/** Every guest's live serial port, one hub per guest while anyone watches. */
export class SerialPorts {
  private readonly hubs = new Map<string, SerialHub>();

  /**
   * Connects to the guest's serial socket (or joins the connection already open) and
   * returns how to attach the viewer once its upgrade is answered. `logPath`, the port's
   * log, gives a new connection what to replay to its first viewers. The port stays
   * open until `attach` or `cancel` is called.
   */
  async open(guestId: string, socketPath: string, logPath: string | null = null): Promise<{ attach(viewer: Duplex, head: Buffer): void; cancel(): void }> {
    let hub = this.hubs.get(guestId);
    if (!hub || hub.state === "closed") {
      const created: SerialHub = new SerialHub(socketPath, logPath, () => {
        if (this.hubs.get(guestId) === created) this.hubs.delete(guestId);
      });
      hub = created;
      this.hubs.set(guestId, hub);
    }
    hub.reserve();
    try {
      await hub.ready;
    } catch (err) {
      hub.unreserve();
      throw err;
    }
    const joined = hub;
    let used = false;
    return {
      attach: (viewer, head) => {
        if (used) return;
        used = true;
        joined.attach(viewer, head);
      },
      cancel: () => {
        if (used) return;
        used = true;
        joined.unreserve();
      },
    };
  }

  closeAll(): void {
    for (const hub of this.hubs.values()) hub.close();
  }
}
