/**
 * The agent's HTTP/JSON API. It listens on a unix socket readable only by its
 * owner; every request body is parsed with the domain schemas before it is used.
 *
 *   GET    /v1/host                    HostInfo (accelerator, QEMU version, ISOs)
 *   GET    /v1/guests                  GuestStatus[] for every supervised guest (one call per host)
 *   GET    /v1/guests/:id              GuestStatus
 *   POST   /v1/guests/:id/argv         GuestSpec → { argv }: the command line it would run
 *   POST   /v1/guests/:id/start        GuestSpec → GuestStatus, once QMP answers
 *   POST   /v1/guests/:id/shutdown     ACPI power button
 *   POST   /v1/guests/:id/reboot       GuestSpec → ACPI power button, then start with that spec
 *   POST   /v1/guests/:id/reset        hard reset
 *   POST   /v1/guests/:id/pause        stop the vCPUs
 *   POST   /v1/guests/:id/resume       continue them
 *   POST   /v1/guests/:id/force-off    quit, then SIGKILL
 *   DELETE /v1/guests/:id              forget a stopped guest's state folder
 *   POST   /v1/guests/:id/disks        { disk: DiskSpec } → GuestStatus: plug a disk into the running guest
 *   DELETE /v1/guests/:id/disks/:volume  → GuestStatus: unplug it (waits until the guest lets go)
 *   GET    /v1/events                  a stream of GuestStatus lines (NDJSON): every supervised
 *                                      guest at once, then each state change as it happens
 *   GET    /v1/guests/:id/vnc          Upgrade: guesthouse-vnc → the raw VNC byte stream; the 101 carries
 *                                      the one-time VNC password (header Guesthouse-Vnc-Password)
 *   GET    /v1/guests/:id/serial       Upgrade: guesthouse-serial → the raw serial port, shared by all viewers
 *   GET    /v1/guests/:id/serial-log   text/plain: everything kept of the serial port's output (also stopped guests)
 *   GET    /v1/guests/:id/screenshot   ?width=N (≤ 640, default 320) → image/png of the guest's screen
 *   POST   /v1/guests/:id/type         { text, layout } → 202 TaskStatus: paste as keystrokes
 *   POST   /v1/guests/:id/vnc-tls-password  → NativeVncPassword { password, host, port, expiresInSeconds }:
 *                                      a one-time password for a native viewer on the guest's TLS VNC
 *                                      display (GUESTHOUSE_VNC_TLS=on; 409 when the guest has none)
 *   GET    /v1/tls/ca                  application/x-pem-file: the host's TLS VNC CA certificate (public;
 *                                      404 when TLS VNC is off)
 *   GET    /v1/tasks                   TaskStatus[]: running and recent tasks (image operations, pastes)
 *   GET    /v1/tasks/:id               TaskStatus
 *   POST   /v1/tasks/:id/cancel        stop a running task; what an image task wrote is removed
 *   POST   /v1/images/list             { formats: { "<pool>/<file>": format } } → ImageInfo[] for every image in every
 *                                      image folder, the registered disks named in `formats` read in their format
 *   POST   /v1/images                  { pool, file, format, bytes, volume, passphrase? } → 201 ImageInfo
 *   GET    /v1/images/:pool/:file      ImageInfo (qemu-img info); ?format= a registered disk's format (else probed)
 *   DELETE /v1/images/:pool/:file      ?volume= also removes its passphrase; refused while in use
 *   (format, sourceFormat below: the format a disk was registered in; an image is never opened by a guess)
 *   POST   /v1/images/:pool/:file/clone     { to: {pool, file}, format, mode } → TaskStatus (done)
 *   POST   /v1/images/:pool/:file/convert   { to: {pool, file}, format, sourceFormat, volume? } → 202 TaskStatus (running)
 *   POST   /v1/images/:pool/:file/resize    { format, bytes, shrink, volume? } → ImageInfo (live when a guest runs it)
 *   POST   /v1/images/:pool/:file/snapshots { format, op, name, volume? } → ImageInfo (live when a guest runs it)
 *   POST   /v1/images/:pool/:file/check     { format } → { ok, report }
 *   GET    /v1/uploads                 UploadPart[]: interrupted uploads, with when each expires
 *   GET    /v1/uploads/:pool/:file     { offset }: bytes an interrupted upload has
 *   PUT    /v1/uploads/:pool/:file?size=N&offset=M   the raw file → { sha256, sizeBytes, format };
 *                                      with Expect: 100-continue, the 100 comes once the upload is accepted
 *   DELETE /v1/uploads/:pool/:file     cancel: stop it and remove what it wrote
 *   DELETE /v1/isos/:name
 *
 * The event stream also carries `{ "task": TaskStatus }` lines for image tasks.
 *
 * Errors are `{ code, message }` with the status from ERROR_CODES.
 */
import http from "node:http";
import os from "node:os";
import type { Duplex } from "node:stream";
import { z } from "zod";
import { GuesthouseError, toGuesthouseError } from "../domain/errors";
import { refuseUpgrade } from "../http/refuse-upgrade";
import type { GuestStatus, HostInfo, TaskStatus } from "../domain/types";
import { NEW_DISK_FORMATS, PASTE_MAX_CHARS, SCREENSHOT_MAX_WIDTH, THUMBNAIL_WIDTH } from "../domain/types";
import { KEYBOARD_LAYOUTS } from "../domain/keymaps";
import { diskFormat, guestSpecSchema, imageBytes, imageFileName, isoName, parseOrThrow, passphrase, poolName, snapshotName, volumeId } from "../domain/validation";
import type { AgentConfig } from "./config";
import { CONSOLE_UPGRADES, type Consoles } from "./console";
import type { ImageRef, Images } from "./images";
import type { Supervisor } from "./supervisor";

const MAX_BODY_BYTES = 256 * 1024;
/** The disks page's list of registered formats: about 50 bytes a disk. */
const LIST_BODY_BYTES = 4 * 1024 * 1024;

const imageRef = z.strictObject({ pool: poolName, file: imageFileName });
const createImageSchema = z.strictObject({
  pool: poolName,
  file: imageFileName,
  format: z.enum(NEW_DISK_FORMATS),
  bytes: imageBytes,
  volume: volumeId,
  passphrase: passphrase.optional(),
});
const cloneSchema = z.strictObject({ to: imageRef, format: diskFormat, mode: z.enum(["full", "linked"]) });
/** `sourceFormat`: the format the disk was registered with; never guessed from the file. */
const convertSchema = z.strictObject({ to: imageRef, format: diskFormat, sourceFormat: diskFormat, volume: volumeId.optional() });
const resizeSchema = z.strictObject({ format: diskFormat, bytes: imageBytes, shrink: z.boolean(), volume: volumeId.optional() });
const snapshotSchema = z.strictObject({ format: diskFormat, op: z.enum(["create", "revert", "delete"]), name: snapshotName, volume: volumeId.optional() });
const checkSchema = z.strictObject({ format: diskFormat });
const listSchema = z.strictObject({ formats: z.record(z.string().max(300), diskFormat) });
/** A disk to plug in, checked with the very schema of a spec's disks. */
const attachSchema = z.strictObject({ disk: guestSpecSchema.shape.disks.element });
/**
 * What a request may buffer before its socket is paused: an upload's body keeps arriving
 * while the part file's write is in flight (Node's default, 16 KiB, is a quarter of one read).
 */
const REQUEST_BUFFER_BYTES = 1024 * 1024;
/** How long the rest of a refused upload's body is read (and dropped) while its client takes in the refusal. */
const REFUSED_BODY_DRAIN_MS = 5_000;
const uploadQuery = z.strictObject({
  size: z.string().regex(/^\d{1,16}$/, "size must be a number of bytes.").transform(Number),
  offset: z.string().regex(/^\d{1,16}$/, "offset must be a number of bytes.").transform(Number).default(0),
});

const typeSchema = z.strictObject({
  text: z
    .string()
    .min(1, "There is no text to type.")
    .max(PASTE_MAX_CHARS, `A paste can type at most ${PASTE_MAX_CHARS.toLocaleString("en")} characters at once; split the text.`),
  layout: z.enum(KEYBOARD_LAYOUTS),
});
const screenshotQuery = z.strictObject({
  width: z
    .string()
    .regex(/^\d{1,5}$/, "width must be a number of pixels.")
    .transform(Number)
    .pipe(z.number().int().min(16, "width must be at least 16 pixels.").max(SCREENSHOT_MAX_WIDTH, `width must be at most ${SCREENSHOT_MAX_WIDTH} pixels.`))
    .default(THUMBNAIL_WIDTH),
});

/** A reply: JSON, or raw bytes of some content type (a log, a picture). */
type Reply = { status?: number; json: unknown } | { status?: number; body: Buffer; type: string };
type Handler = (params: string[], body: unknown, query: URLSearchParams) => Promise<Reply>;
/** Method, path, handler, and the largest JSON body it takes (MAX_BODY_BYTES unless given). */
type Route = [string, RegExp, Handler, number?];

export function createAgentServer(config: AgentConfig, supervisor: Supervisor, images: Images, consoles: Consoles): http.Server {
  const ref = (pool: string | undefined, file: string | undefined): ImageRef => parseOrThrow(imageRef, { pool, file }, "The image");
  const optionalVolume = (query: URLSearchParams) => (query.has("volume") ? parseOrThrow(volumeId, query.get("volume"), "The volume") : undefined);

  const routes: Route[] = [
    ["GET", /^\/v1\/host$/, async () => {
      const info: HostInfo = {
        hostname: os.hostname(),
        accelerator: config.accelerator,
        acceleratorReason: config.acceleratorReason,
        qemuVersion: config.qemuVersion,
        isos: await images.listIsos(),
        pools: await images.storage.pools(),
        forwards: config.forwards,
      };
      return { json: info };
    }],
    ["GET", /^\/v1\/guests$/, async () => ({ json: supervisor.list() })],
    ["GET", /^\/v1\/guests\/([^/]+)$/, async ([id]) => ({ json: supervisor.status(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/argv$/, async ([id], body) => ({ json: { argv: await supervisor.argvFor(specFor(id, body)) } })],
    ["POST", /^\/v1\/guests\/([^/]+)\/start$/, async ([id], body) => ({ json: await supervisor.start(specFor(id, body)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/shutdown$/, async ([id]) => ({ json: await supervisor.shutdown(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/reboot$/, async ([id], body) => ({ json: await supervisor.reboot(specFor(id, body)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/reset$/, async ([id]) => ({ json: await supervisor.reset(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/pause$/, async ([id]) => ({ json: await supervisor.pause(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/resume$/, async ([id]) => ({ json: await supervisor.resume(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/force-off$/, async ([id]) => ({ json: await supervisor.forceOff(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/restart$/, async ([id], body) => ({ json: await supervisor.restart(specFor(id, body)) })],
    ["DELETE", /^\/v1\/guests\/([^/]+)$/, async ([id]) => {
      await supervisor.forget(parseId(id));
      return { status: 204, json: null };
    }],
    ["POST", /^\/v1\/guests\/([^/]+)\/disks$/, async ([id], body) => {
      const { disk } = parseOrThrow(attachSchema, body, "The disk");
      const holder = images.tasks.holder(`${disk.pool}/${disk.file}`);
      if (holder) throw new GuesthouseError("conflict", `${disk.file} is busy: ${holder.title} is running. Wait for it to finish or cancel it.`);
      return { json: await supervisor.attachDisk(parseId(id), disk) };
    }],
    ["DELETE", /^\/v1\/guests\/([^/]+)\/disks\/([^/]+)$/, async ([id, volume]) => ({
      json: await supervisor.detachDisk(parseId(id), parseOrThrow(volumeId, volume, "The volume")),
    })],
    ["GET", /^\/v1\/guests\/([^/]+)\/serial-log$/, async ([id]) => ({
      body: await consoles.serialLog(parseId(id)),
      type: "text/plain; charset=utf-8",
    })],
    ["GET", /^\/v1\/guests\/([^/]+)\/screenshot$/, async ([id], _, query) => {
      const { width } = parseOrThrow(screenshotQuery, Object.fromEntries(query), "The screenshot request");
      return { body: await consoles.screenshot(parseId(id), width), type: "image/png" };
    }],
    ["POST", /^\/v1\/guests\/([^/]+)\/type$/, async ([id], body) => {
      const req = parseOrThrow(typeSchema, body, "The text to type");
      return { status: 202, json: consoles.type(parseId(id), req.text, req.layout) };
    }],
    ["POST", /^\/v1\/guests\/([^/]+)\/vnc-tls-password$/, async ([id]) => ({ json: await consoles.nativeVncPassword(parseId(id)) })],
    ["GET", /^\/v1\/tls\/ca$/, async () => ({ body: Buffer.from(await consoles.vncCaCertificate(), "utf8"), type: "application/x-pem-file" })],

    ["GET", /^\/v1\/tasks$/, async () => ({ json: images.tasks.list() })],
    ["GET", /^\/v1\/tasks\/([^/]+)$/, async ([id]) => ({ json: images.tasks.get(parseTaskId(id)) })],
    ["POST", /^\/v1\/tasks\/([^/]+)\/cancel$/, async ([id]) => ({ json: images.tasks.cancel(parseTaskId(id)) })],

    ["POST", /^\/v1\/images\/list$/, async (_, body) => {
      const req = parseOrThrow(listSchema, body, "The list request");
      return { json: await images.list(new Map(Object.entries(req.formats))) };
    }, LIST_BODY_BYTES],
    ["POST", /^\/v1\/images$/, async (_, body) => {
      const req = parseOrThrow(createImageSchema, body, "The image request");
      return { status: 201, json: await images.create(req) };
    }],
    ["GET", /^\/v1\/images\/([^/]+)\/([^/]+)$/, async ([pool, file], _, query) => {
      const format = query.has("format") ? parseOrThrow(diskFormat, query.get("format"), "The format") : null;
      return { json: await images.info(ref(pool, file), format) };
    }],
    ["DELETE", /^\/v1\/images\/([^/]+)\/([^/]+)$/, async ([pool, file], _, query) => {
      await images.remove({ ...ref(pool, file), volume: optionalVolume(query) });
      return { status: 204, json: null };
    }],
    ["POST", /^\/v1\/images\/([^/]+)\/([^/]+)\/clone$/, async ([pool, file], body) => {
      const req = parseOrThrow(cloneSchema, body, "The clone request");
      return { status: 201, json: await images.clone({ ...ref(pool, file), format: req.format }, req.to, req.mode) };
    }],
    ["POST", /^\/v1\/images\/([^/]+)\/([^/]+)\/convert$/, async ([pool, file], body) => {
      const req = parseOrThrow(convertSchema, body, "The convert request");
      return { status: 202, json: images.convert({ ...ref(pool, file), format: req.sourceFormat }, { ...req.to, format: req.format }, { volume: req.volume }) };
    }],
    ["POST", /^\/v1\/images\/([^/]+)\/([^/]+)\/resize$/, async ([pool, file], body) => {
      const req = parseOrThrow(resizeSchema, body, "The resize request");
      return { json: await images.resize({ ...ref(pool, file), ...req }) };
    }],
    ["POST", /^\/v1\/images\/([^/]+)\/([^/]+)\/snapshots$/, async ([pool, file], body) => {
      const req = parseOrThrow(snapshotSchema, body, "The snapshot request");
      return { json: await images.snapshot({ ...ref(pool, file), format: req.format, volume: req.volume }, req.op, req.name) };
    }],
    ["POST", /^\/v1\/images\/([^/]+)\/([^/]+)\/check$/, async ([pool, file], body) => {
      const req = parseOrThrow(checkSchema, body, "The check request");
      return { json: await images.check({ ...ref(pool, file), format: req.format }) };
    }],

    ["GET", /^\/v1\/uploads$/, async () => ({ json: await images.parts() })],
    ["GET", /^\/v1\/uploads\/([^/]+)\/([^/]+)$/, async ([pool, file]) => ({ json: { offset: await images.uploadOffset(ref(pool, file)) } })],
    ["DELETE", /^\/v1\/uploads\/([^/]+)\/([^/]+)$/, async ([pool, file]) => {
      await images.cancelUpload(ref(pool, file));
      return { status: 204, json: null };
    }],
    ["DELETE", /^\/v1\/isos\/([^/]+)$/, async ([name]) => {
      await images.removeIso(parseOrThrow(isoName, name, "The ISO name"));
      return { status: 204, json: null };
    }],
  ];

  /**
   * PUT /v1/uploads/:pool/:file: the body is the file itself, streamed to disk. A client
   * that sends `Expect: 100-continue` (the web does) gets `100 Continue` only once the
   * upload is accepted; a refusal before that is the final answer, and the client sends
   * nothing of the body.
   */
  const upload = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL, match: RegExpExecArray) => {
    // Kept here: a failed write destroys `req`, which then lets go of its socket.
    const socket = req.socket;
    let continued = false;
    try {
      const target = ref(decodeURIComponent(match[1]!), decodeURIComponent(match[2]!));
      const query = parseOrThrow(uploadQuery, Object.fromEntries(url.searchParams), "The upload request");
      const length = req.headers["content-length"];
      if (length !== undefined && Number(length) !== query.size - query.offset) {
        throw new GuesthouseError("invalid-input", `The upload's Content-Length (${length}) is not its size less its offset (${query.size - query.offset}).`);
      }
      const accepted = () => {
        continued = true;
        if (expectsContinue(req)) res.writeContinue();
      };
      const result = await images.receive(target, req, query.size, query.offset, accepted);
      send(res, 201, result);
    } catch (err) {
      const error = toGuesthouseError(err);
      if (error.code === "internal") console.error(`agent: upload ${url.pathname} failed:`, error.detail);
      // A client waiting for `100 Continue` sends no body after a refusal: the connection
      // closes after it. Otherwise the refusal goes out while the client may still be sending
      // (a folder that filled up mid-way), and what it sends is read and dropped (dropBody).
      if (!continued && expectsContinue(req) && !req.complete) res.setHeader("connection", "close");
      send(res, error.httpStatus, error.toJSON());
      if (res.getHeader("connection") !== "close") dropBody(req, socket);
    }
  };
  const uploadPath = (req: http.IncomingMessage) => {
    if (req.method !== "PUT") return null;
    try {
      return /^\/v1\/uploads\/([^/]+)\/([^/]+)$/.exec(new URL(req.url ?? "/", "http://agent").pathname);
    } catch {
      return null; // not a URL: handle() refuses it
    }
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.method === "GET" && req.url === "/v1/events") return streamEvents(supervisor, images, res);
    const started = Date.now();
    try {
      const url = new URL(req.url ?? "/", "http://agent");
      const uploadMatch = uploadPath(req);
      if (uploadMatch) return await upload(req, res, url, uploadMatch);
      const route = routes.find(([method, pattern]) => method === req.method && pattern.test(url.pathname));
      // The whole body arrives before any answer, so every answer (a refusal too) reaches the
      // client whole and the connection can carry its next request.
      const raw = await readBody(req, route?.[3] ?? MAX_BODY_BYTES);
      if (!route) throw new GuesthouseError("not-found", `No such agent endpoint: ${req.method} ${url.pathname}`);
      const params = route[1].exec(url.pathname)!.slice(1).map(decodeURIComponent);
      if (req.method !== "POST" && raw.length > 0) throw new GuesthouseError("invalid-input", `${req.method} ${url.pathname} takes no body.`);
      const body = req.method === "POST" ? parseJson(req, raw) : undefined;
      const reply = await route[2](params, body, url.searchParams);
      if ("body" in reply) sendBytes(res, reply.status ?? 200, reply.type, reply.body);
      else send(res, reply.status ?? 200, reply.json);
    } catch (err) {
      const error = toGuesthouseError(err);
      if (error.code === "internal") console.error(`agent: ${req.method} ${req.url} failed:`, error.detail);
      send(res, error.httpStatus, error.toJSON());
    } finally {
      if (process.env.GUESTHOUSE_AGENT_LOG === "1") console.log(`agent: ${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms`);
    }
  };
  const server = http.createServer({ highWaterMark: REQUEST_BUFFER_BYTES }, handle);
  // An upload answers `100 Continue` itself once accepted; any other request may go on at once.
  server.on("checkContinue", (req, res) => {
    if (!uploadPath(req)) res.writeContinue();
    void handle(req, res);
  });

  server.on("upgrade", (req, socket, head) => void upgradeConsole(consoles, req, socket, head));

  return server;
}

/**
 * GET /v1/guests/:id/vnc or /serial with the matching Upgrade: the guest's byte stream.
 * The guest's side is opened first, so a refusal is a real HTTP status with a message
 * (guest not running, no serial port, display unreachable); then the 101, then raw bytes.
 */
async function upgradeConsole(consoles: Consoles, req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  socket.on("error", () => {}); // a client gone mid-handshake; the relay handles errors after it
  const match = /^\/v1\/guests\/([^/]+)\/(vnc|serial)$/.exec(req.url ?? "");
  const upgrade = req.headers.upgrade ?? "";
  const kind = Object.hasOwn(CONSOLE_UPGRADES, upgrade) ? CONSOLE_UPGRADES[upgrade as keyof typeof CONSOLE_UPGRADES] : null;
  if (!match || kind !== match[2]) return refuseUpgrade(socket, 404, "No such upgrade.", "not-found");
  let stream;
  try {
    stream = await consoles.open(kind, parseId(match[1]));
  } catch (err) {
    const error = toGuesthouseError(err);
    if (error.code === "internal") console.error(`agent: opening the ${kind} stream of ${req.url} failed:`, error.detail);
    return refuseUpgrade(socket, error.httpStatus, error.message, error.code);
  }
  if (socket.destroyed) return stream.cancel();
  const extra = Object.entries(stream.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n${extra}\r\n`);
  stream.attach(socket, head);
}

/** Pushes state changes as they happen, so pages learn of them without polling. */
function streamEvents(supervisor: Supervisor, images: Images, res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  // Now, not with the first line: a host with no guests and no tasks has nothing to say yet,
  // and the web learns from the answer itself that the agent is there.
  res.flushHeaders();
  const send = (status: GuestStatus) => res.write(`${JSON.stringify(status)}\n`);
  const sendTask = (task: TaskStatus) => res.write(`${JSON.stringify({ task })}\n`);
  for (const status of supervisor.list()) send(status);
  for (const task of images.tasks.list()) sendTask(task);
  supervisor.on("state", send);
  images.tasks.on("task", sendTask);
  // A comment-free keep-alive: an empty line every 15 s lets both sides notice a dead peer.
  const keepAlive = setInterval(() => res.write("\n"), 15_000);
  res.on("close", () => {
    supervisor.off("state", send);
    images.tasks.off("task", sendTask);
    clearInterval(keepAlive);
  });
}

function parseTaskId(id: string | undefined): string {
  return parseOrThrow(z.string().regex(/^t[a-z0-9]{6,40}$/, "A task id looks like t…"), id, "The task id");
}

function parseId(id: string | undefined): string {
  return parseOrThrow(volumeId, id, "The guest id");
}

function specFor(id: string | undefined, body: unknown) {
  const spec = parseOrThrow(guestSpecSchema, body, "The guest spec");
  if (spec.id !== parseId(id)) throw new GuesthouseError("invalid-input", "The spec's id does not match the URL.");
  return spec;
}

/**
 * A request's whole body. Up to `limitBytes` is kept; a larger one is read to its end
 * and dropped (for REFUSED_BODY_DRAIN_MS at most, then the connection is cut) and
 * refused, so the refusal is answered once the client has sent everything.
 */
function readBody(req: http.IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let cut: NodeJS.Timeout | null = null;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limitBytes) return void chunks.push(chunk);
      if (!cut) cut = setTimeout(() => req.socket.destroy(), REFUSED_BODY_DRAIN_MS);
    });
    req.once("end", () => {
      if (cut) clearTimeout(cut);
      if (size > limitBytes) reject(new GuesthouseError("invalid-input", `The request body is larger than ${limitBytes} bytes.`));
      else resolve(Buffer.concat(chunks));
    });
    req.once("error", reject);
  });
}

/** A POST's body as JSON. */
function parseJson(req: http.IncomingMessage, raw: Buffer): unknown {
  if (!(req.headers["content-type"] ?? "").startsWith("application/json")) {
    throw new GuesthouseError("invalid-input", "The agent accepts only application/json bodies.");
  }
  try {
    return JSON.parse(raw.toString("utf8") || "null");
  } catch {
    throw new GuesthouseError("invalid-input", "The request body is not valid JSON.");
  }
}

/**
 * Reads what is left of a request's body and drops it, so the answer already sent
 * arrives whole (closing now would meet the client's next write with a reset, which can
 * reach it before the answer) and the connection can carry the next request once the
 * body has ended. A client that goes on sending for REFUSED_BODY_DRAIN_MS is cut off.
 */
function dropBody(req: http.IncomingMessage, socket: Duplex): void {
  if (req.complete || req.destroyed || socket.destroyed) return;
  const cut = setTimeout(() => socket.destroy(), REFUSED_BODY_DRAIN_MS);
  const done = () => clearTimeout(cut);
  req.once("end", done);
  socket.once("close", done);
  req.resume();
}

function sendBytes(res: http.ServerResponse, status: number, type: string, body: Buffer): void {
  res.writeHead(status, { "content-type": type, "content-length": body.length, "cache-control": "no-store" }).end(body);
}

function expectsContinue(req: http.IncomingMessage): boolean {
  return /^100-continue$/i.test(req.headers.expect ?? "");
}

function send(res: http.ServerResponse, status: number, json: unknown): void {
  if (status === 204) {
    res.writeHead(204).end();
    return;
  }
  const body = JSON.stringify(json);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
}
