/**
 * The one typed client the web uses to talk to host agents. Its requests and the checks
 * of their replies come from the protocol's table (server/agent-protocol.ts), so the rest
 * of the web can trust the types. Before its first request to an agent, a process asks
 * which protocol the agent speaks and refuses one that speaks another (see `agree`).
 * An endpoint looks like `unix:/path/to/agent.sock` (the only kind so far; TCP+TLS comes with remote hosts).
 */
import type { GuestSample, MetricsBatch, MetricsCurrent } from "../domain/metrics";
import http from "node:http";
import type { Duplex, Readable } from "node:stream";
import {
  AGENT_PROTOCOL_VERSION,
  AGENT_ROUTES,
  errorReply,
  eventLine,
  pathOf,
  type AddressesLine,
  type AgentRoute,
  type CheckedReplyOf,
  type NetworkCounters,
  type NetworkRequest,
  type NetworkState,
  type PathParams,
  type RequestOf,
} from "../agent-protocol";
import { ERROR_CODES, GuesthouseError, isErrorCode, type ErrorCode } from "../domain/errors";
import type { KeyboardLayout } from "../domain/keymaps";
import {
  AGENT_VNC_PASSWORD_HEADER,
  type DiskFormat,
  type DiskSpec,
  type NicSpec,
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

/** An image on a host: a storage folder's name and a file name in it. */
export interface ImageRef {
  pool: string;
  file: string;
}

/** A registered disk's image, with the format it was registered in: the agent opens it as that, never by a guess. */
export interface DiskRef extends ImageRef {
  format: DiskFormat;
}

type UploadResult = CheckedReplyOf<typeof AGENT_ROUTES.upload>;

/**
 * The endpoints whose agent said it speaks AGENT_PROTOCOL_VERSION, in this process (the
 * check, pending or passed). One is forgotten when its agent cannot be reached or its
 * event stream ends: the agent may come back upgraded, and is asked again.
 */
const agreedEndpoints = new Map<string, Promise<void>>();

function socketPathOf(endpoint: string): string {
  if (!endpoint.startsWith("unix:")) {
    throw new GuesthouseError("internal", "Only local agents (unix:) are supported so far.", endpoint);
  }
  return endpoint.slice("unix:".length);
}

export class AgentClient {
  constructor(readonly endpoint: string) {}

  /**
   * Settles once the agent has said which protocol it speaks: resolves when it is ours,
   * rejects ("agent-unreachable", saying what to upgrade) when not. Asked once per
   * endpoint and process; a failed check is not kept, so the next request asks again.
   */
  private agree(): Promise<void> {
    let check = agreedEndpoints.get(this.endpoint);
    if (!check) {
      const asked = this.askVersion();
      agreedEndpoints.set(this.endpoint, asked);
      asked.catch(() => {
        if (agreedEndpoints.get(this.endpoint) === asked) agreedEndpoints.delete(this.endpoint);
      });
      check = asked;
    }
    return check;
  }

  private async askVersion(): Promise<void> {
    const route = AGENT_ROUTES.version;
    const reply = await this.send(route.method, route.path);
    const parsed = reply.status === 200 ? route.reply.safeParse(jsonOrNull(reply.body)) : null;
    const theirs = parsed?.success ? parsed.data.protocol : null;
    if (theirs === AGENT_PROTOCOL_VERSION) return;
    const detail = `GET ${route.path} answered ${reply.status}: ${reply.body.toString("utf8").slice(0, 200)}`;
    if (theirs === null) {
      throw new GuesthouseError(
        "agent-unreachable",
        `The host agent at ${this.endpoint} does not say which agent protocol it speaks: it is older than this web server (protocol ${AGENT_PROTOCOL_VERSION}), or not a Guesthouse agent. Upgrade the agent on that host to the web's Guesthouse version.`,
        detail,
      );
    }
    throw new GuesthouseError(
      "agent-unreachable",
      `The host agent at ${this.endpoint} speaks agent protocol ${theirs}, and this web server speaks ${AGENT_PROTOCOL_VERSION}. Upgrade the agent on that host, or the web, so that both are the same Guesthouse version.`,
      detail,
    );
  }

  /** The agent could not be reached: it is asked its protocol again once it can. */
  private lost(err: Error): GuesthouseError {
    agreedEndpoints.delete(this.endpoint);
    return unreachable(err);
  }

  /** One HTTP exchange with an agent that speaks our protocol. */
  private async exchange(method: string, path: string, body?: unknown): Promise<{ status: number; type: string; body: Buffer }> {
    await this.agree();
    return this.send(method, path, body);
  }

  /** One HTTP exchange with the agent: the reply's status, content type and raw body. */
  private send(method: string, path: string, body?: unknown): Promise<{ status: number; type: string; body: Buffer }> {
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
      req.on("error", (err) => reject(err instanceof GuesthouseError ? err : this.lost(err)));
      req.end(payload);
    });
  }

  /**
   * A JSON request to `route` (a POST without a body schema sends `{}`); the reply is
   * checked with the route's schema. `query`: "?…", or "".
   */
  private async call<R extends AgentRoute>(route: R, params: PathParams<R>, body?: RequestOf<R>, query = ""): Promise<CheckedReplyOf<R>> {
    const reply = await this.exchange(route.method, pathOf(route, params) + query, body ?? (route.method === "POST" ? {} : undefined));
    const text = reply.body.toString("utf8");
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      throw new GuesthouseError("agent-unreachable", "The host agent sent a reply that is not JSON.", text.slice(0, 200));
    }
    if (reply.status >= 400) throw agentError(json, reply.status);
    if (!route.reply) return undefined as CheckedReplyOf<R>;
    const parsed = route.reply.safeParse(json);
    if (!parsed.success) throw new GuesthouseError("internal", "The host agent sent a reply of the wrong shape.", parsed.error.message);
    return parsed.data as CheckedReplyOf<R>;
  }

  /** A request whose reply is not JSON (a log, a picture): its bytes, if of the route's type. */
  private async callBytes<R extends AgentRoute & { bytes: string }>(route: R, params: PathParams<R>, query = ""): Promise<Buffer> {
    const reply = await this.exchange(route.method, pathOf(route, params) + query);
    if (reply.status >= 400) throw agentError(jsonOrNull(reply.body), reply.status);
    const expectedType = route.bytes.split(";")[0]!;
    if (!reply.type.startsWith(expectedType)) {
      throw new GuesthouseError("internal", `The host agent sent ${reply.type || "something untyped"} instead of ${expectedType}.`);
    }
    return reply.body;
  }

  host(): Promise<HostInfo> {
    return this.call(AGENT_ROUTES.host, {});
  }

  /** Every guest the agent supervises, in one call; a guest it does not list is stopped. */
  guests(): Promise<GuestStatus[]> {
    return this.call(AGENT_ROUTES.guests, {});
  }

  guest(id: string): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.guest, { id });
  }

  argv(spec: GuestSpec): Promise<string[]> {
    return this.call(AGENT_ROUTES.argv, { id: spec.id }, spec).then((r) => r.argv);
  }

  start(spec: GuestSpec): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.start, { id: spec.id }, spec);
  }

  shutdown(id: string): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.shutdown, { id });
  }

  /** ACPI power button, then a fresh start with `spec` once the guest has powered off. */
  reboot(spec: GuestSpec): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.reboot, { id: spec.id }, spec);
  }

  reset(id: string): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.reset, { id });
  }

  pause(id: string): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.pause, { id });
  }

  resume(id: string): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.resume, { id });
  }

  /** Force off a guest QEMU has halted, then a fresh start with `spec`. */
  restart(spec: GuestSpec): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.restart, { id: spec.id }, spec);
  }

  /** A network card's link up or down (index from 0) while the guest runs. */
  async setLink(id: string, index: number, up: boolean): Promise<void> {
    await this.call(AGENT_ROUTES.setLink, { id, index: String(index) }, { up });
  }

  forceOff(id: string): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.forceOff, { id });
  }

  forget(id: string): Promise<void> {
    return this.call(AGENT_ROUTES.forget, { id });
  }

  /** Plugs a disk into a running (or paused) guest; the status carries the running spec with it. */
  attachDisk(id: string, disk: DiskSpec): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.attachDisk, { id }, { disk });
  }

  /** Unplugs a disk from a running guest; resolves once the guest has let go of it. */
  detachDisk(id: string, volume: string): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.detachDisk, { id, volume });
  }

  /** Plugs a network card into a running guest (a managed one gets its port, address and tap). */
  plugNic(id: string, nic: NicSpec): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.plugNic, { id }, { nic });
  }

  /** Unplugs the card with this MAC from a running guest; resolves once the guest has let go of it. */
  unplugNic(id: string, mac: string): Promise<GuestStatus> {
    return this.call(AGENT_ROUTES.unplugNic, { id, mac });
  }

  /** Every managed network of the host. */
  networks(): Promise<NetworkState[]> {
    return this.call(AGENT_ROUTES.networks, {});
  }

  /** Makes a managed network, or brings it in line with `spec` (undone on the host if a step fails). */
  applyNetwork(id: string, spec: NetworkRequest): Promise<NetworkState> {
    return this.call(AGENT_ROUTES.applyNetwork, { id }, spec);
  }

  removeNetwork(id: string): Promise<void> {
    return this.call(AGENT_ROUTES.removeNetwork, { id });
  }

  /** The DHCP leases of a network's guests. */
  networkLeases(id: string): Promise<Array<{ expires: number; mac: string; ip: string; hostname: string | null }>> {
    return this.call(AGENT_ROUTES.networkLeases, { id });
  }

  /** What on the host would stop managed networks, each with its fix. */
  networkCounters(id: string): Promise<NetworkCounters> {
    return this.call(AGENT_ROUTES.networkCounters, { id });
  }

  /** Connects from the host to a network's forward: whether the guest answered. */
  testForward(id: string, protocol: "tcp" | "udp", hostPort: number): Promise<{ answered: boolean; message: string }> {
    return this.call(AGENT_ROUTES.testForward, { id }, { protocol, hostPort });
  }

  networkDoctor(): Promise<Array<{ id: string; problem: string; fix: string }>> {
    return this.call(AGENT_ROUTES.networkDoctor, {});
  }

  /** The agent's regular metrics ticks after tick `after` of boot `boot` (all it keeps when that tick is another boot's or gone). */
  metrics(boot?: string, after?: number): Promise<MetricsBatch> {
    const query = boot !== undefined && after !== undefined ? `?boot=${encodeURIComponent(boot)}&after=${after}` : "";
    return this.call(AGENT_ROUTES.metrics, {}, undefined, query);
  }

  /** Every running guest's counters and latest sample, and the host's. */
  metricsCurrent(): Promise<MetricsCurrent> {
    return this.call(AGENT_ROUTES.metricsCurrent, {});
  }

  /** A running guest's samples after `after` (ms), read every second while asked for. */
  metricsLive(id: string, after: number): Promise<Array<{ at: number; sample: GuestSample }>> {
    return this.call(AGENT_ROUTES.metricsLive, { id }, undefined, `?after=${Math.max(0, Math.floor(after))}`);
  }

  tasks(): Promise<TaskStatus[]> {
    return this.call(AGENT_ROUTES.tasks, {});
  }

  task(id: string): Promise<TaskStatus> {
    return this.call(AGENT_ROUTES.task, { id });
  }

  cancelTask(id: string): Promise<TaskStatus> {
    return this.call(AGENT_ROUTES.cancelTask, { id });
  }

  /**
   * Every image file of the host with qemu-img's facts (or why they could not be read);
   * the `registered` disks read in their format, the other files probed.
   */
  images(registered: DiskRef[] = []): Promise<Array<ImageInfo | (ImageRef & { error: string })>> {
    const formats = Object.fromEntries(registered.map((d) => [`${d.pool}/${d.file}`, d.format]));
    return this.call(AGENT_ROUTES.listImages, {}, { formats });
  }

  /** qemu-img's facts: a registered disk's in its format (a DiskRef), a file not yet registered as qemu-img probes it. */
  image(ref: ImageRef | DiskRef): Promise<ImageInfo> {
    const format = "format" in ref ? `?format=${encodeURIComponent(ref.format)}` : "";
    return this.call(AGENT_ROUTES.image, ref, undefined, format);
  }

  /** A new sparse image; with a passphrase, LUKS-encrypted qcow2 (the agent keeps the passphrase). */
  createImage(req: ImageRef & { format: "qcow2" | "raw"; bytes: number; volume: string; passphrase?: string | undefined }): Promise<ImageInfo> {
    return this.call(AGENT_ROUTES.createImage, {}, req);
  }

  /** A new qcow2 image `to` from `from`: a full copy, or linked (backed by it). */
  cloneImage(from: DiskRef, to: ImageRef, mode: "full" | "linked"): Promise<TaskStatus> {
    return this.call(AGENT_ROUTES.cloneImage, from, { to, format: from.format, mode });
  }

  /** Starts converting into a new image (`from.format`: as the disk was registered); resolves with the running task. */
  convertImage(from: DiskRef, to: ImageRef, format: DiskFormat): Promise<TaskStatus> {
    return this.call(AGENT_ROUTES.convertImage, from, { to: { pool: to.pool, file: to.file }, format, sourceFormat: from.format });
  }

  resizeImage(ref: DiskRef, bytes: number, shrink: boolean, volume?: string): Promise<ImageInfo> {
    return this.call(AGENT_ROUTES.resizeImage, ref, { format: ref.format, bytes, shrink, ...(volume ? { volume } : {}) });
  }

  snapshot(ref: DiskRef, op: "create" | "revert" | "delete", name: string, volume?: string): Promise<ImageInfo> {
    return this.call(AGENT_ROUTES.snapshot, ref, { format: ref.format, op, name, ...(volume ? { volume } : {}) });
  }

  checkImage(ref: DiskRef): Promise<{ ok: boolean; report: string }> {
    return this.call(AGENT_ROUTES.checkImage, ref, { format: ref.format });
  }

  /** Deletes an image (and, given its volume, the passphrase the agent keeps for it). */
  deleteImage(ref: ImageRef, volume?: string): Promise<void> {
    return this.call(AGENT_ROUTES.deleteImage, ref, undefined, volume ? `?volume=${encodeURIComponent(volume)}` : "");
  }

  /** Interrupted uploads kept for resuming, oldest first, with when each expires. */
  uploadParts(): Promise<UploadPart[]> {
    return this.call(AGENT_ROUTES.uploadParts, {});
  }

  uploadOffset(ref: ImageRef): Promise<number> {
    return this.call(AGENT_ROUTES.uploadOffset, ref).then((r) => r.offset);
  }

  cancelUpload(ref: ImageRef): Promise<void> {
    return this.call(AGENT_ROUTES.cancelUpload, ref);
  }

  deleteIso(name: string): Promise<void> {
    return this.call(AGENT_ROUTES.deleteIso, { name });
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
  ): Promise<UploadResult> {
    return new Promise((resolve, reject) => {
      const route = AGENT_ROUTES.upload;
      const length = size - offset;
      let req: http.ClientRequest | null = null;
      let sending = false;
      let settled = false;
      // The body may fail or close while the agent is asked its protocol, before the request exists.
      const onBodyError = (err: Error) => (req ? req.destroy(err) : settle(err));
      const onBodyClose = () => {
        if (body.readableEnded) return;
        const err = new GuesthouseError("invalid-input", "The upload's source closed before its end.");
        if (req) req.destroy(err);
        else settle(err);
      };
      const settle = (err: Error | null, value?: UploadResult) => {
        if (settled) return;
        settled = true;
        body.off("error", onBodyError);
        body.off("close", onBodyClose);
        if (sending && req) body.unpipe(req);
        if (err) reject(err);
        else resolve(value!);
      };
      const open = () => {
        // highWaterMark: net.Socket's option (http.request passes it on to the socket; its type does not say so).
        const options: http.RequestOptions & { highWaterMark: number } = {
          socketPath: socketPathOf(this.endpoint),
          method: route.method,
          path: `${pathOf(route, ref)}?size=${size}&offset=${offset}`,
          headers: {
            "content-type": "application/octet-stream",
            "content-length": length,
            ...(length > 0 ? { expect: "100-continue" } : {}),
          },
          highWaterMark: UPLOAD_SOCKET_BUFFER_BYTES,
        };
        const request = (req = http.request(options));
        const send = () => {
          if (sending || settled) return;
          sending = true;
          hooks.onAccepted?.();
          body.pipe(request);
        };
        request.once("continue", send);
        request.on("response", (res) => {
          const status = res.statusCode ?? 500;
          // A refusal or failure: send no more of the body (the caller still holds the rest).
          if (status >= 400 && sending) body.unpipe(request);
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (err) => settle(this.lost(err)));
          res.on("end", () => {
            const json = jsonOrNull(Buffer.concat(chunks));
            if (status >= 400) {
              settle(agentError(json, status));
              // The body was cut short (or never sent): this connection cannot carry another request.
              request.destroy();
              return;
            }
            const parsed = route.reply.safeParse(json);
            if (!parsed.success) return settle(new GuesthouseError("internal", "The host agent sent a reply of the wrong shape.", parsed.error.message));
            settle(null, parsed.data);
          });
        });
        request.on("error", (err) => settle(err instanceof GuesthouseError ? err : this.lost(err)));
        if (length > 0) request.flushHeaders();
        else send();
      };
      body.once("error", onBodyError);
      body.once("close", onBodyClose);
      this.agree()
        .then(() => settled || open())
        .catch((err: Error) => settle(err));
    });
  }

  /**
   * Follows the agent's state changes: `onOpen` once the agent accepted the stream,
   * then `onStatus` for every supervised guest at once, `onSynced` once all of them came
   * (a guest not among them is stopped), and `onStatus` for each change. `onAddresses`
   * gets a guest's cards on managed networks with their addresses, those known before
   * `onSynced` and then as they change (`nics: []`: it has none any more). `done`
   * settles when the stream ends; call the returned `close` to stop following. A stream
   * that ends by the agent's doing has the agent asked its protocol again at the next
   * request: it may have been upgraded meanwhile.
   */
  events(
    onStatus: (status: GuestStatus) => void,
    onOpen?: () => void,
    onTask?: (task: TaskStatus) => void,
    onSynced?: () => void,
    onAddresses?: (line: AddressesLine) => void,
  ): { done: Promise<void>; close(): void } {
    let request: http.ClientRequest | null = null;
    let closing = false;
    const follow = () =>
      new Promise<void>((resolve, reject) => {
        if (closing) return resolve();
        request = http.request({ socketPath: socketPathOf(this.endpoint), path: AGENT_ROUTES.events.path }, (res) => {
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
              const parsed = eventLine.safeParse(json);
              if (!parsed.success) continue;
              const event = parsed.data;
              if ("id" in event) onStatus(event);
              else if ("task" in event) onTask?.(event.task);
              else if ("addresses" in event) onAddresses?.(event.addresses);
              else onSynced?.();
            }
          });
          res.on("end", () => {
            if (!closing) agreedEndpoints.delete(this.endpoint);
            resolve();
          });
          res.on("error", (err) => (closing ? resolve() : reject(this.lost(err))));
        });
        request.on("error", (err) => (closing ? resolve() : reject(this.lost(err))));
        request.end();
      });
    return {
      done: this.agree().then(follow),
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
    const { stream, headers } = await this.openStream(AGENT_ROUTES.vnc, { id });
    const password = headers[AGENT_VNC_PASSWORD_HEADER];
    if (typeof password !== "string") {
      stream.destroy();
      throw new GuesthouseError("internal", "The host agent opened the display without a VNC password.");
    }
    return { stream, password };
  }

  /** Opens the guest's serial port through the agent (shared with everyone else watching it). */
  async openSerial(id: string): Promise<Duplex> {
    return (await this.openStream(AGENT_ROUTES.serial, { id })).stream;
  }

  /** Everything the guest's serial port printed that the host keeps (the older rotated part first). */
  async serialLog(id: string): Promise<string> {
    return (await this.callBytes(AGENT_ROUTES.serialLog, { id })).toString("utf8");
  }

  /** A PNG of the running guest's screen, `width` pixels wide at most (default 320, at most 640). */
  screenshot(id: string, width?: number): Promise<Buffer> {
    const query = width === undefined ? "" : `?width=${encodeURIComponent(String(width))}`;
    return this.callBytes(AGENT_ROUTES.screenshot, { id }, query);
  }

  /** Types `text` into the running guest as key presses for its keyboard `layout`; resolves with the running task. */
  typeText(id: string, text: string, layout: KeyboardLayout): Promise<TaskStatus> {
    return this.call(AGENT_ROUTES.type, { id }, { text, layout });
  }

  /**
   * A one-time password for a native viewer on the guest's TLS VNC display, with the
   * host and port to connect to (GUESTHOUSE_VNC_TLS=on; conflict when the guest has none).
   */
  nativeVncPassword(id: string): Promise<NativeVncPassword> {
    return this.call(AGENT_ROUTES.vncTlsPassword, { id });
  }

  /** The host's TLS VNC certificate authority (PEM, public): what a native viewer must trust. */
  async vncCaCertificate(): Promise<string> {
    const pem = (await this.callBytes(AGENT_ROUTES.tlsCa, {})).toString("utf8");
    if (!pem.startsWith("-----BEGIN CERTIFICATE-----")) throw new GuesthouseError("internal", "The host agent sent a CA certificate that is not PEM.");
    return pem;
  }

  /** An HTTP Upgrade to one of the agent's byte streams; a refusal rejects with the agent's error. */
  private async openStream<R extends AgentRoute & { upgrade: string }>(route: R, params: PathParams<R>): Promise<{ stream: Duplex; headers: http.IncomingHttpHeaders }> {
    await this.agree();
    return new Promise((resolve, reject) => {
      const req = http.request({
        socketPath: socketPathOf(this.endpoint),
        path: pathOf(route, params),
        headers: { connection: "Upgrade", upgrade: route.upgrade },
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
      req.on("error", (err) => reject(err instanceof GuesthouseError ? err : this.lost(err)));
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
  const parsed = errorReply.safeParse(json);
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
