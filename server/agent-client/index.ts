/**
 * The one typed client the web uses to talk to host agents. Replies are validated
 * here, so the rest of the web can trust their types. An endpoint looks like
 * `unix:/path/to/agent.sock` (the only kind so far; TCP+TLS comes with remote hosts).
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import { z } from "zod";
import { ERROR_CODES, GuesthouseError, isErrorCode, type ErrorCode } from "../domain/errors";
import { guestSpecSchema } from "../domain/validation";
import type { Readable } from "node:stream";
import {
  AGENT_SERIAL_UPGRADE,
  AGENT_VNC_PASSWORD_HEADER,
  AGENT_VNC_UPGRADE,
  GUEST_STATES,
  TASK_KINDS,
  TASK_STATES,
  type DiskFormat,
  type DiskSpec,
  type GuestSpec,
  type GuestStatus,
  type UploadPart,
  type HostInfo,
  type ImageInfo,
  type NativeVncPassword,
  type TaskStatus,
} from "../domain/types";

const REQUEST_TIMEOUT_MS = 60_000;
/** What the socket carrying an upload to the agent may hold before the body's source is paused. */
const UPLOAD_SOCKET_BUFFER_BYTES = 1024 * 1024;

const guestStatusSchema = z.object({
  id: z.string(),
  state: z.enum(GUEST_STATES),
  since: z.number(),
  pid: z.number().int().nullable(),
  logTail: z.string().nullable(),
  argv: z.array(z.string()).nullable(),
  spec: guestSpecSchema.nullable(),
  haltReason: z.string().nullable().optional(),
  vncTls: z.object({ host: z.string(), port: z.number().int().min(1).max(65535) }).nullable().optional(),
});
const nativeVncPasswordSchema = z.object({
  password: z.string().min(1),
  host: z.string(),
  port: z.number().int().min(1).max(65535),
  expiresInSeconds: z.number().int().positive(),
});
const hostInfoSchema = z.object({
  hostname: z.string(),
  accelerator: z.enum(["kvm", "tcg"]),
  acceleratorReason: z.string(),
  qemuVersion: z.string(),
  isos: z.array(z.object({ name: z.string(), sizeBytes: z.number() })),
  pools: z.array(z.object({ name: z.string(), content: z.enum(["images", "isos"]), totalBytes: z.number(), freeBytes: z.number() })),
  forwards: z.object({ address: z.string(), firstPort: z.number().int(), lastPort: z.number().int() }),
});
const uploadPartSchema = z.object({
  pool: z.string(),
  file: z.string(),
  bytes: z.number(),
  modifiedAt: z.number(),
  expiresAt: z.number(),
  uploading: z.boolean(),
});
const imageInfoSchema = z.object({
  pool: z.string(),
  file: z.string(),
  format: z.string(),
  virtualBytes: z.number(),
  actualBytes: z.number(),
  encrypted: z.boolean(),
  backing: z.array(z.string()),
  snapshots: z.array(z.object({ id: z.string(), name: z.string(), date: z.number(), vmStateBytes: z.number() })),
  dirty: z.boolean(),
  raw: z.record(z.string(), z.unknown()),
});
const imageListSchema = z.array(z.union([imageInfoSchema, z.object({ pool: z.string(), file: z.string(), error: z.string() })]));
const taskStatusSchema = z.object({
  id: z.string(),
  kind: z.enum(TASK_KINDS),
  title: z.string(),
  targets: z.array(z.string()),
  state: z.enum(TASK_STATES),
  progress: z.number().nullable(),
  startedAt: z.number(),
  finishedAt: z.number().nullable(),
  message: z.string().nullable(),
  log: z.array(z.string()),
});
const uploadResultSchema = z.object({ sha256: z.string(), sizeBytes: z.number(), format: z.string() });

/** An image on a host: a storage folder's name and a file name in it. */
export interface ImageRef {
  pool: string;
  file: string;
}

/** A registered disk's image, with the format it was registered in: the agent opens it as that, never by a guess. */
export interface DiskRef extends ImageRef {
  format: DiskFormat;
}

const imagePath = (ref: ImageRef) => `${encodeURIComponent(ref.pool)}/${encodeURIComponent(ref.file)}`;
const errorSchema = z.object({ code: z.string(), message: z.string(), detail: z.string().optional() });

function socketPathOf(endpoint: string): string {
  if (!endpoint.startsWith("unix:")) {
    throw new GuesthouseError("internal", "Only local agents (unix:) are supported so far.", endpoint);
  }
  return endpoint.slice("unix:".length);
}

export class AgentClient {
  constructor(readonly endpoint: string) {}

  /** One HTTP exchange with the agent: the reply's status, content type and raw body. */
  private exchange(method: string, path: string, body?: unknown): Promise<{ status: number; type: string; body: Buffer }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: socketPathOf(this.endpoint),
          method,
          path,
          timeout: REQUEST_TIMEOUT_MS,
          headers: payload
            ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => resolve({ status: res.statusCode ?? 500, type: res.headers["content-type"] ?? "", body: Buffer.concat(chunks) }));
        },
      );
      req.on("timeout", () => req.destroy(new GuesthouseError("timeout", "The host agent did not answer in time.")));
      req.on("error", (err) => reject(err instanceof GuesthouseError ? err : unreachable(err)));
      req.end(payload);
    });
  }

  /** A JSON request; the reply is checked against `schema` (null: no reply body expected). */
  private async request<T>(method: string, path: string, schema: z.ZodType<T> | null, body?: unknown): Promise<T> {
    const reply = await this.exchange(method, path, body);
    const text = reply.body.toString("utf8");
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      throw new GuesthouseError("agent-unreachable", "The host agent sent a reply that is not JSON.", text.slice(0, 200));
    }
    if (reply.status >= 400) throw agentError(json, reply.status);
    if (!schema) return undefined as T;
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new GuesthouseError("internal", "The host agent sent a reply of the wrong shape.", parsed.error.message);
    return parsed.data;
  }

  /** A request whose reply is not JSON (a log, a picture): its bytes, if of the expected type. */
  private async requestBytes(method: string, path: string, expectedType: string): Promise<Buffer> {
    const reply = await this.exchange(method, path);
    if (reply.status >= 400) throw agentError(jsonOrNull(reply.body), reply.status);
    if (!reply.type.startsWith(expectedType)) {
      throw new GuesthouseError("internal", `The host agent sent ${reply.type || "something untyped"} instead of ${expectedType}.`);
    }
    return reply.body;
  }

  host(): Promise<HostInfo> {
    return this.request("GET", "/v1/host", hostInfoSchema);
  }

  /** Every guest the agent supervises, in one call; a guest it does not list is stopped. */
  guests(): Promise<GuestStatus[]> {
    return this.request("GET", "/v1/guests", z.array(guestStatusSchema));
  }

  guest(id: string): Promise<GuestStatus> {
    return this.request("GET", `/v1/guests/${encodeURIComponent(id)}`, guestStatusSchema);
  }

  argv(spec: GuestSpec): Promise<string[]> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(spec.id)}/argv`, z.object({ argv: z.array(z.string()) }), spec).then(
      (r) => r.argv,
    );
  }

  start(spec: GuestSpec): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(spec.id)}/start`, guestStatusSchema, spec);
  }

  shutdown(id: string): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(id)}/shutdown`, guestStatusSchema, {});
  }

  /** ACPI power button, then a fresh start with `spec` once the guest has powered off. */
  reboot(spec: GuestSpec): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(spec.id)}/reboot`, guestStatusSchema, spec);
  }

  reset(id: string): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(id)}/reset`, guestStatusSchema, {});
  }

  pause(id: string): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(id)}/pause`, guestStatusSchema, {});
  }

  resume(id: string): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(id)}/resume`, guestStatusSchema, {});
  }

  /** Force off a guest QEMU has halted, then a fresh start with `spec`. */
  restart(spec: GuestSpec): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(spec.id)}/restart`, guestStatusSchema, spec);
  }

  forceOff(id: string): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(id)}/force-off`, guestStatusSchema, {});
  }

  forget(id: string): Promise<void> {
    return this.request("DELETE", `/v1/guests/${encodeURIComponent(id)}`, null);
  }

  /** Plugs a disk into a running (or paused) guest; the status carries the running spec with it. */
  attachDisk(id: string, disk: DiskSpec): Promise<GuestStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(id)}/disks`, guestStatusSchema, { disk });
  }

  /** Unplugs a disk from a running guest; resolves once the guest has let go of it. */
  detachDisk(id: string, volume: string): Promise<GuestStatus> {
    return this.request("DELETE", `/v1/guests/${encodeURIComponent(id)}/disks/${encodeURIComponent(volume)}`, guestStatusSchema);
  }

  tasks(): Promise<TaskStatus[]> {
    return this.request("GET", "/v1/tasks", z.array(taskStatusSchema));
  }

  task(id: string): Promise<TaskStatus> {
    return this.request("GET", `/v1/tasks/${encodeURIComponent(id)}`, taskStatusSchema);
  }

  cancelTask(id: string): Promise<TaskStatus> {
    return this.request("POST", `/v1/tasks/${encodeURIComponent(id)}/cancel`, taskStatusSchema, {});
  }

  /**
   * Every image file of the host with qemu-img's facts (or why they could not be read);
   * the `registered` disks read in their format, the other files probed.
   */
  images(registered: DiskRef[] = []): Promise<Array<ImageInfo | (ImageRef & { error: string })>> {
    const formats = Object.fromEntries(registered.map((d) => [`${d.pool}/${d.file}`, d.format]));
    return this.request("POST", "/v1/images/list", imageListSchema, { formats });
  }

  /** qemu-img's facts: a registered disk's in its format (a DiskRef), a file not yet registered as qemu-img probes it. */
  image(ref: ImageRef | DiskRef): Promise<ImageInfo> {
    const format = "format" in ref ? `?format=${encodeURIComponent(ref.format)}` : "";
    return this.request("GET", `/v1/images/${imagePath(ref)}${format}`, imageInfoSchema);
  }

  /** A new sparse image; with a passphrase, LUKS-encrypted qcow2 (the agent keeps the passphrase). */
  createImage(req: ImageRef & { format: "qcow2" | "raw"; bytes: number; volume: string; passphrase?: string | undefined }): Promise<ImageInfo> {
    return this.request("POST", "/v1/images", imageInfoSchema, req);
  }

  /** A new qcow2 image `to` from `from`: a full copy, or linked (backed by it). */
  cloneImage(from: DiskRef, to: ImageRef, mode: "full" | "linked"): Promise<TaskStatus> {
    return this.request("POST", `/v1/images/${imagePath(from)}/clone`, taskStatusSchema, { to, format: from.format, mode });
  }

  /** Starts converting into a new image (`from.format`: as the disk was registered); resolves with the running task. */
  convertImage(from: DiskRef, to: ImageRef, format: DiskFormat): Promise<TaskStatus> {
    return this.request("POST", `/v1/images/${imagePath(from)}/convert`, taskStatusSchema, { to: { pool: to.pool, file: to.file }, format, sourceFormat: from.format });
  }

  resizeImage(ref: DiskRef, bytes: number, shrink: boolean, volume?: string): Promise<ImageInfo> {
    return this.request("POST", `/v1/images/${imagePath(ref)}/resize`, imageInfoSchema, { format: ref.format, bytes, shrink, ...(volume ? { volume } : {}) });
  }

  snapshot(ref: DiskRef, op: "create" | "revert" | "delete", name: string, volume?: string): Promise<ImageInfo> {
    return this.request("POST", `/v1/images/${imagePath(ref)}/snapshots`, imageInfoSchema, { format: ref.format, op, name, ...(volume ? { volume } : {}) });
  }

  checkImage(ref: DiskRef): Promise<{ ok: boolean; report: string }> {
    return this.request("POST", `/v1/images/${imagePath(ref)}/check`, z.object({ ok: z.boolean(), report: z.string() }), { format: ref.format });
  }

  /** Deletes an image (and, given its volume, the passphrase the agent keeps for it). */
  deleteImage(ref: ImageRef, volume?: string): Promise<void> {
    return this.request("DELETE", `/v1/images/${imagePath(ref)}${volume ? `?volume=${encodeURIComponent(volume)}` : ""}`, null);
  }

  /** Interrupted uploads kept for resuming, oldest first, with when each expires. */
  uploadParts(): Promise<UploadPart[]> {
    return this.request("GET", "/v1/uploads", z.array(uploadPartSchema));
  }

  uploadOffset(ref: ImageRef): Promise<number> {
    return this.request("GET", `/v1/uploads/${imagePath(ref)}`, z.object({ offset: z.number() })).then((r) => r.offset);
  }

  cancelUpload(ref: ImageRef): Promise<void> {
    return this.request("DELETE", `/v1/uploads/${imagePath(ref)}`, null);
  }

  deleteIso(name: string): Promise<void> {
    return this.request("DELETE", `/v1/isos/${encodeURIComponent(name)}`, null);
  }

  /**
   * Streams a file to the host: `size` bytes in all, from `offset` when resuming.
   * Resolves with the file's SHA-256.
   *
   * The request carries `Expect: 100-continue`, and `body` is not read until the agent
   * has accepted the upload (size limit, free space, name and offset checked, the file
   * held by its task): a refusal thus arrives as the agent's own status with nothing of
   * the body read, so the caller can still answer its own client. Once accepted,
   * `onAccepted` runs and `body` is piped with backpressure (memory stays flat). A body
   * that fails or closes before its end ends the agent's side too, which keeps what
   * arrived for resuming.
   */
  upload(
    ref: ImageRef,
    body: Readable,
    size: number,
    offset: number,
    hooks: { onAccepted?: () => void } = {},
  ): Promise<{ sha256: string; sizeBytes: number; format: string }> {
    return new Promise((resolve, reject) => {
      const length = size - offset;
      let sending = false;
      let settled = false;
      // highWaterMark: net.Socket's option (http.request passes it on to the socket; its type does not say so).
      const options: http.RequestOptions & { highWaterMark: number } = {
        socketPath: socketPathOf(this.endpoint),
        method: "PUT",
        path: `/v1/uploads/${imagePath(ref)}?size=${size}&offset=${offset}`,
        headers: {
          "content-type": "application/octet-stream",
          "content-length": length,
          ...(length > 0 ? { expect: "100-continue" } : {}),
        },
        highWaterMark: UPLOAD_SOCKET_BUFFER_BYTES,
      };
      const req = http.request(options);
      const onBodyError = (err: Error) => req.destroy(err);
      const onBodyClose = () => {
        if (!body.readableEnded) req.destroy(new GuesthouseError("invalid-input", "The upload's source closed before its end."));
      };
      const settle = (err: Error | null, value?: { sha256: string; sizeBytes: number; format: string }) => {
        if (settled) return;
        settled = true;
        body.off("error", onBodyError);
        body.off("close", onBodyClose);
        if (sending) body.unpipe(req);
        if (err) reject(err);
        else resolve(value!);
      };
      const send = () => {
        if (sending || settled) return;
        sending = true;
        hooks.onAccepted?.();
        body.pipe(req);
      };
      body.once("error", onBodyError);
      body.once("close", onBodyClose);
      req.once("continue", send);
      req.on("response", (res) => {
        const status = res.statusCode ?? 500;
        // A refusal or failure: send no more of the body (the caller still holds the rest).
        if (status >= 400 && sending) body.unpipe(req);
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => settle(unreachable(err)));
        res.on("end", () => {
          const json = jsonOrNull(Buffer.concat(chunks));
          if (status >= 400) {
            settle(agentError(json, status));
            // The body was cut short (or never sent): this connection cannot carry another request.
            req.destroy();
            return;
          }
          const parsed = uploadResultSchema.safeParse(json);
          if (!parsed.success) return settle(new GuesthouseError("internal", "The host agent sent a reply of the wrong shape.", parsed.error.message));
          settle(null, parsed.data);
        });
      });
      req.on("error", (err) => settle(err instanceof GuesthouseError ? err : unreachable(err)));
      if (length > 0) req.flushHeaders();
      else send();
    });
  }

  /**
   * Follows the agent's state changes: `onOpen` once the agent accepted the stream,
   * then `onStatus` for every supervised guest at once and for each change. `done`
   * settles when the stream ends; call the returned `close` to stop following.
   */
  events(
    onStatus: (status: GuestStatus) => void,
    onOpen?: () => void,
    onTask?: (task: TaskStatus) => void,
  ): { done: Promise<void>; close(): void } {
    let request: http.ClientRequest | null = null;
    let closing = false;
    const done = new Promise<void>((resolve, reject) => {
      request = http.request({ socketPath: socketPathOf(this.endpoint), path: "/v1/events" }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new GuesthouseError("agent-unreachable", `The host agent refused its event stream (${res.statusCode}).`));
        }
        onOpen?.();
        let buffer = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffer += chunk;
          let newline: number;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            if (!line) continue;
            let json: unknown;
            try {
              json = JSON.parse(line);
            } catch {
              continue; // a torn or foreign line: skip it, the next change brings the state again
            }
            if (json && typeof json === "object" && "task" in json) {
              const task = taskStatusSchema.safeParse((json as { task: unknown }).task);
              if (task.success) onTask?.(task.data);
              continue;
            }
            const parsed = guestStatusSchema.safeParse(json);
            if (parsed.success) onStatus(parsed.data);
          }
        });
        res.on("end", () => resolve());
        res.on("error", (err) => (closing ? resolve() : reject(unreachable(err))));
      });
      request.on("error", (err) => (closing ? resolve() : reject(unreachable(err))));
      request.end();
    });
    return {
      done,
      close: () => {
        closing = true;
        request?.destroy();
      },
    };
  }

  /**
   * Opens the guest's raw VNC byte stream through the agent, with the one-time VNC
   * password its viewer must give ("" when the guest's display has none: it was
   * started before one-time passwords; a restart turns them on).
   */
  async openVnc(id: string): Promise<{ stream: Duplex; password: string }> {
    const { stream, headers } = await this.openStream(`/v1/guests/${encodeURIComponent(id)}/vnc`, AGENT_VNC_UPGRADE);
    const password = headers[AGENT_VNC_PASSWORD_HEADER];
    if (typeof password !== "string") {
      stream.destroy();
      throw new GuesthouseError("internal", "The host agent opened the display without a VNC password.");
    }
    return { stream, password };
  }

  /** Opens the guest's serial port through the agent (shared with everyone else watching it). */
  async openSerial(id: string): Promise<Duplex> {
    return (await this.openStream(`/v1/guests/${encodeURIComponent(id)}/serial`, AGENT_SERIAL_UPGRADE)).stream;
  }

  /** Everything the guest's serial port printed that the host keeps (the older rotated part first). */
  async serialLog(id: string): Promise<string> {
    return (await this.requestBytes("GET", `/v1/guests/${encodeURIComponent(id)}/serial-log`, "text/plain")).toString("utf8");
  }

  /** A PNG of the running guest's screen, `width` pixels wide at most (default 320, at most 640). */
  screenshot(id: string, width?: number): Promise<Buffer> {
    const query = width === undefined ? "" : `?width=${encodeURIComponent(String(width))}`;
    return this.requestBytes("GET", `/v1/guests/${encodeURIComponent(id)}/screenshot${query}`, "image/png");
  }

  /** Types `text` into the running guest as key presses for its keyboard `layout`; resolves with the running task. */
  typeText(id: string, text: string, layout: string): Promise<TaskStatus> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(id)}/type`, taskStatusSchema, { text, layout });
  }

  /**
   * A one-time password for a native viewer on the guest's TLS VNC display, with the
   * host and port to connect to (GUESTHOUSE_VNC_TLS=on; conflict when the guest has none).
   */
  nativeVncPassword(id: string): Promise<NativeVncPassword> {
    return this.request("POST", `/v1/guests/${encodeURIComponent(id)}/vnc-tls-password`, nativeVncPasswordSchema, {});
  }

  /** The host's TLS VNC certificate authority (PEM, public): what a native viewer must trust. */
  async vncCaCertificate(): Promise<string> {
    const pem = (await this.requestBytes("GET", "/v1/tls/ca", "application/x-pem-file")).toString("utf8");
    if (!pem.startsWith("-----BEGIN CERTIFICATE-----")) throw new GuesthouseError("internal", "The host agent sent a CA certificate that is not PEM.");
    return pem;
  }

  /** An HTTP Upgrade to one of the agent's byte streams; a refusal rejects with the agent's error. */
  private openStream(path: string, upgrade: string): Promise<{ stream: Duplex; headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const req = http.request({
        socketPath: socketPathOf(this.endpoint),
        path,
        headers: { connection: "Upgrade", upgrade },
        timeout: 10_000,
      });
      req.on("upgrade", (res, socket, head) => {
        socket.setTimeout(0);
        if (head.length) socket.unshift(head);
        resolve({ stream: socket, headers: res.headers });
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => reject(agentError(jsonOrNull(Buffer.concat(chunks)), res.statusCode ?? 502)));
      });
      req.on("timeout", () => req.destroy(new GuesthouseError("timeout", "The host agent did not open the console in time.")));
      req.on("error", (err) => reject(err instanceof GuesthouseError ? err : unreachable(err)));
      req.end();
    });
  }
}

/** A reply body as JSON, or null when it is not JSON (an error page from something that is not our agent). */
function jsonOrNull(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return null;
  }
}

function agentError(json: unknown, status: number): GuesthouseError {
  const parsed = errorSchema.safeParse(json);
  if (parsed.success && isErrorCode(parsed.data.code)) {
    return new GuesthouseError(parsed.data.code, parsed.data.message, parsed.data.detail);
  }
  // An answer without a code (not from our agent): its status still tells which kind of error it is.
  const message = (json as { message?: unknown } | null)?.message;
  const code = (Object.keys(ERROR_CODES) as ErrorCode[]).find((c) => ERROR_CODES[c] === status) ?? "internal";
  return new GuesthouseError(code, typeof message === "string" ? message : `The host agent answered ${status}.`);
}

function unreachable(err: Error): GuesthouseError {
  return new GuesthouseError(
    "agent-unreachable",
    "The host agent is not reachable. Check that it runs (see the README), then try again.",
    err.message,
  );
}
