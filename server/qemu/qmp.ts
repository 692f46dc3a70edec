/**
 * A QMP client with an explicit protocol state machine, after QEMU's own
 * python/qemu/qmp: IDLE → CONNECTING → RUNNING → DISCONNECTING → IDLE.
 *
 * - The greeting is checked before capabilities are negotiated.
 * - Each call carries a generated id; replies are matched by id, in any order.
 * - Messages with an `event` key go to "event" listeners and never to a call.
 * - When the socket drops, every pending call is rejected ("qmp-disconnected").
 * - A call made in the wrong state is refused ("qmp-state") without touching the socket.
 */
import { EventEmitter } from "node:events";
import net from "node:net";
import { GuesthouseError } from "../domain/errors";

export type QmpRunstate = "idle" | "connecting" | "running" | "disconnecting";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package?: string }; capabilities: unknown[] };
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** How long a command may take unless the caller says otherwise. */
const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** Guards against a peer that never sends a newline. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * QEMU's refusal of one command, with its fields as QEMU sent them: callers decide on
 * `errorClass` and `desc` (QEMU's own words), never on the message composed for people.
 */
export class QmpCommandError extends GuesthouseError {
  constructor(
    readonly command: string,
    /** QMP's error class: "GenericError", "DeviceNotFound", "CommandNotFound", … */
    readonly errorClass: string,
    /** QEMU's description of what went wrong. */
    readonly desc: string,
  ) {
    super("qmp-error", `QEMU refused ${command}: ${desc}`, `class=${errorClass}`);
    this.name = "QmpCommandError";
  }
}

export class QmpClient extends EventEmitter<{ event: [QmpEvent]; disconnect: [Error | null]; state: [QmpRunstate] }> {
  private _state: QmpRunstate = "idle";
  private socket: net.Socket | null = null;
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  /** Ids of calls that timed out: their late replies are expected and dropped. */
  private readonly lateIds = new Set<string>();
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } | null = null;
  greeting: QmpGreeting | null = null;

  get state(): QmpRunstate {
    return this._state;
  }

  private setState(next: QmpRunstate): void {
    this._state = next;
    this.emit("state", next);
  }

  private require(state: QmpRunstate, what: string): void {
    if (this._state !== state) {
      throw new GuesthouseError("qmp-state", `QMP ${what} needs state ${state}, but the client is ${this._state}.`);
    }
  }

  /** Connects to a QMP unix socket, checks the greeting and negotiates capabilities. */
  async connect(socketPath: string, timeoutMs = 5000): Promise<QmpGreeting> {
    this.require("idle", "connect");
    this.setState("connecting");
    const socket = net.createConnection({ path: socketPath });
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", (err) => this.onClose(err));
    socket.on("close", () => this.onClose(null));

    const timer = setTimeout(() => {
      this.onClose(new GuesthouseError("timeout", `QMP did not greet within ${timeoutMs} ms.`));
    }, timeoutMs);
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        this.greetingWaiter = { resolve, reject };
      });
      // A bad line right behind the greeting may already have closed the connection.
      if (this._state !== "connecting") throw new GuesthouseError("qmp-error", "QMP closed the connection right after its greeting.");
      this.greeting = greeting;
      this.setState("running");
      await this.execute("qmp_capabilities");
      return greeting;
    } catch (err) {
      this.destroy(err instanceof Error ? err : new Error(String(err)));
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs one QMP command and resolves with its `return` value. A call that gets no
   * reply within `timeoutMs` rejects with "timeout" (a late reply is then dropped),
   * so a stuck QEMU can never hang its caller.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<T> {
    try {
      this.require("running", `command ${command}`);
    } catch (err) {
      return Promise.reject(err);
    }
    const socket = this.socket;
    if (!socket) return Promise.reject(new GuesthouseError("qmp-state", `QMP command ${command} needs a connection.`));
    const id = `gh-${this.nextId++}`;
    const message = JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id });
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.lateIds.add(id);
        reject(new GuesthouseError("timeout", `QEMU did not answer ${command} within ${timeoutMs} ms.`));
      }, timeoutMs);
      this.pending.set(id, {
        command,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      socket.write(`${message}\n`);
    });
  }

  /** Closes the connection; pending calls are rejected. */
  async close(): Promise<void> {
    if (this._state === "idle") return;
    const socket = this.socket;
    this.setState("disconnecting");
    if (socket && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        socket.once("close", () => resolve());
        socket.end();
        setTimeout(() => socket.destroy(), 1000).unref();
      });
    }
    this.onClose(null);
  }

  private destroy(err: Error): void {
    this.socket?.destroy();
    this.onClose(err);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    if (this.buffer.length > MAX_LINE_BYTES) {
      this.destroy(new GuesthouseError("qmp-error", "QMP sent an oversized message; the connection was closed."));
      return;
    }
    let newline: number;
    while ((newline = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(line);
      if (this.socket === null) return;
    }
  }

  private onMessage(line: string): void {
    let message: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      message = parsed as Record<string, unknown>;
    } catch {
      this.destroy(new GuesthouseError("qmp-error", "QMP sent something that is not a JSON object.", line.slice(0, 200)));
      return;
    }

    if (this.greetingWaiter) {
      const waiter = this.greetingWaiter;
      this.greetingWaiter = null;
      if (isGreeting(message)) waiter.resolve(message);
      else waiter.reject(new GuesthouseError("qmp-error", "The QMP peer did not start with a valid greeting.", line.slice(0, 200)));
      return;
    }

    if (typeof message.event === "string") {
      this.emit("event", message as unknown as QmpEvent);
      return;
    }

    const id = typeof message.id === "string" ? message.id : null;
    if (id && this.lateIds.delete(id)) return; // the caller already gave up on it
    const call = id ? this.pending.get(id) : undefined;
    if (!id || !call) {
      // A reply nobody asked for; QEMU never does this, so the peer is confused.
      this.destroy(new GuesthouseError("qmp-error", "QMP sent a reply that matches no pending call.", line.slice(0, 200)));
      return;
    }
    this.pending.delete(id);
    if ("return" in message) {
      call.resolve(message.return);
    } else {
      const error = (message.error ?? {}) as { class?: unknown; desc?: unknown };
      call.reject(new QmpCommandError(call.command, typeof error.class === "string" ? error.class : "?", typeof error.desc === "string" ? error.desc : "no reason given"));
    }
  }

  private onClose(err: Error | null): void {
    if (this._state === "idle" && this.socket === null) return;
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
    const reason =
      err instanceof GuesthouseError
        ? err
        : new GuesthouseError("qmp-disconnected", "The connection to QEMU closed.", err?.message);
    if (this.greetingWaiter) {
      this.greetingWaiter.reject(reason);
      this.greetingWaiter = null;
    }
    for (const [id, call] of this.pending) {
      this.pending.delete(id);
      call.reject(
        err instanceof GuesthouseError && err.code === "timeout"
          ? err
          : new GuesthouseError("qmp-disconnected", `The connection to QEMU closed while ${call.command} was pending.`, err?.message),
      );
    }
    this.buffer = "";
    this.lateIds.clear();
    this.setState("idle");
    this.emit("disconnect", err);
  }
}

function isGreeting(message: Record<string, unknown>): message is Record<string, unknown> & QmpGreeting {
  const qmp = message.QMP as { version?: { qemu?: unknown }; capabilities?: unknown } | undefined;
  return (
    typeof qmp === "object" &&
    qmp !== null &&
    typeof qmp.version === "object" &&
    typeof qmp.version?.qemu === "object" &&
    Array.isArray(qmp.capabilities)
  );
}

/** The next event `match` accepts, or null after `timeoutMs` or when QMP closes; listening starts at once. */
export function nextEvent(qmp: QmpClient, match: (event: QmpEvent) => boolean, timeoutMs: number): { promise: Promise<QmpEvent | null>; cancel(): void } {
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

/** The ids of a guest's devices (disks, cards, controllers, hot-plug ports), as QEMU lists them now. */
export async function peripherals(qmp: QmpClient): Promise<Set<string>> {
  const children = await qmp.execute<Array<{ name: string; type: string }>>("qom-list", { path: "/machine/peripheral" });
  return new Set(children.filter((c) => c.type.startsWith("child<")).map((c) => c.name));
}
