/**
 * The agent's HTTP/JSON API: the routes of server/agent-protocol.ts (the API's one
 * written description), each with its handler here. The router finds a request's route
 * in that table and parses its body and query with the route's schemas before the
 * handler runs; handlers check path parameters with the domain schemas.
 */
import http from "node:http";
import os from "node:os";
import type { Duplex } from "node:stream";
import { z } from "zod";
import {
  AGENT_PROTOCOL_VERSION,
  AGENT_ROUTES,
  imageRef,
  matchPath,
  networkId,
  type AgentRoute,
  type AgentRouteName,
  type AgentRoutes,
  type ParsedRequestOf,
  type PathParams,
  type ReplyOf,
} from "../agent-protocol";
import { GuesthouseError, toGuesthouseError } from "../domain/errors";
import { refuseUpgrade } from "../http/refuse-upgrade";
import type { GuestSpec, GuestStatus, TaskStatus } from "../domain/types";
import { diskFormat, isoName, mac, parseOrThrow, volumeId } from "../domain/validation";
import type { AgentConfig } from "./config";
import { CONSOLE_UPGRADES, type Consoles } from "./console";
import type { ImageRef, Images } from "./images";
import type { Finding } from "./networks/doctor";
import type { Networks } from "./networks/manager";
import type { AddressWatch, GuestAddresses } from "./networks/watch";
import type { Metrics } from "./metrics/sampler";
import type { Supervisor } from "./supervisor";

const MAX_BODY_BYTES = 256 * 1024;
/**
 * What a request may buffer before its socket is paused: an upload's body keeps arriving
 * while the part file's write is in flight (Node's default, 16 KiB, is a quarter of one read).
 */
const REQUEST_BUFFER_BYTES = 1024 * 1024;
/** How long the rest of a refused upload's body is read (and dropped) while its client takes in the refusal. */
const REFUSED_BODY_DRAIN_MS = 5_000;

/** The routes the router answers; upgrades, the event stream and uploads are handled apart (below). */
type PlainRouteName = { [K in AgentRouteName]: AgentRoutes[K] extends { upgrade: string } | { ndjson: true } | { rawBody: true } ? never : K }[AgentRouteName];
/** A route's query, parsed with its schema; a route without one reads its optional parameters itself. */
type QueryOf<R extends AgentRoute> = R extends { query: infer Q extends z.ZodType } ? z.output<Q> : URLSearchParams;
/** A reply: the route's JSON (null: 204), or its bytes (sent as the route's content type). */
type Reply<R extends AgentRoute> = R extends { bytes: string } ? { body: Buffer } : { status?: number; json: ReplyOf<R> };
type Handler<R extends AgentRoute> = (params: PathParams<R>, body: ParsedRequestOf<R>, query: QueryOf<R>) => Promise<Reply<R>>;
/** A handler as the router calls it, whatever its route. */
type AnyHandler = (params: Record<string, string>, body: unknown, query: unknown) => Promise<{ status?: number; json: unknown } | { body: Buffer }>;

export function createAgentServer(
  config: AgentConfig,
  supervisor: Supervisor,
  images: Images,
  consoles: Consoles,
  networks: Networks,
  doctor: () => Promise<Finding[]>,
  addresses: Pick<AddressWatch, "of" | "all" | "on" | "off">,
  metrics: Pick<Metrics, "batch" | "current" | "live">,
): http.Server {
  const ref = (pool: string, file: string): ImageRef => parseOrThrow(imageRef, { pool, file }, "The image");
  const optionalVolume = (query: URLSearchParams) => (query.has("volume") ? parseOrThrow(volumeId, query.get("volume"), "The volume") : undefined);

  const handlers: { [K in PlainRouteName]: Handler<AgentRoutes[K]> } = {
    version: async () => ({ json: { protocol: AGENT_PROTOCOL_VERSION } }),
    host: async () => ({
      json: {
        hostname: os.hostname(),
        accelerator: config.accelerator,
        acceleratorReason: config.acceleratorReason,
        qemuVersion: config.qemuVersion,
        isos: await images.listIsos(),
        pools: await images.storage.pools(),
        forwards: config.forwards,
      },
    }),
    guests: async () => ({ json: supervisor.list().map((status) => ({ ...status, addresses: addresses.of(status.id) })) }),
    guest: async ({ id }) => {
      const status = supervisor.status(parseId(id));
      return { json: { ...status, addresses: addresses.of(status.id) } };
    },
    argv: async ({ id }, spec) => ({ json: { argv: await supervisor.argvFor(specFor(id, spec)) } }),
    start: async ({ id }, spec) => ({ json: await supervisor.start(specFor(id, spec)) }),
    shutdown: async ({ id }) => ({ json: await supervisor.shutdown(parseId(id)) }),
    reboot: async ({ id }, spec) => ({ json: await supervisor.reboot(specFor(id, spec)) }),
    reset: async ({ id }) => ({ json: await supervisor.reset(parseId(id)) }),
    pause: async ({ id }) => ({ json: await supervisor.pause(parseId(id)) }),
    resume: async ({ id }) => ({ json: await supervisor.resume(parseId(id)) }),
    forceOff: async ({ id }) => ({ json: await supervisor.forceOff(parseId(id)) }),
    setLink: async ({ id, index }, body) => {
      await supervisor.setLink(parseId(id), Number(index), body.up);
      return { status: 204, json: null };
    },
    restart: async ({ id }, spec) => ({ json: await supervisor.restart(specFor(id, spec)) }),
    forget: async ({ id }) => {
      await supervisor.forget(parseId(id));
      return { status: 204, json: null };
    },
    attachDisk: async ({ id }, { disk }) => {
      const holder = images.tasks.holder(`${disk.pool}/${disk.file}`);
      if (holder) throw new GuesthouseError("conflict", `${disk.file} is busy: ${holder.title} is running. Wait for it to finish or cancel it.`);
      return { json: await supervisor.attachDisk(parseId(id), disk) };
    },
    detachDisk: async ({ id, volume }) => ({ json: await supervisor.detachDisk(parseId(id), parseOrThrow(volumeId, volume, "The volume")) }),
    plugNic: async ({ id }, { nic }) => ({ json: await supervisor.plugNic(parseId(id), nic) }),
    unplugNic: async ({ id, mac: card }) => ({ json: await supervisor.unplugNic(parseId(id), parseOrThrow(mac, card.toLowerCase(), "The MAC address")) }),
    serialLog: async ({ id }) => ({ body: await consoles.serialLog(parseId(id)) }),
    screenshot: async ({ id }, _, { width }) => ({ body: await consoles.screenshot(parseId(id), width) }),
    type: async ({ id }, { text, layout }) => ({ status: 202, json: consoles.type(parseId(id), text, layout) }),
    vncTlsPassword: async ({ id }) => ({ json: await consoles.nativeVncPassword(parseId(id)) }),
    tlsCa: async () => ({ body: Buffer.from(await consoles.vncCaCertificate(), "utf8") }),

    metrics: async (_, __, { boot, after }) => ({ json: metrics.batch(boot, after) }),
    metricsCurrent: async () => ({ json: await metrics.current() }),
    metricsLive: async ({ id }, __, { after }) => {
      const samples = metrics.live(parseId(id), after ?? 0);
      if (!samples) throw new GuesthouseError("conflict", "This guest is not running.");
      return { json: samples };
    },

    networks: async () => ({ json: networks.list() }),
    applyNetwork: async ({ id }, req) => {
      const spec = { id: parseOrThrow(networkId, id, "The network's id"), ...req };
      await networks.apply(spec);
      return { json: networks.stateOf(spec) };
    },
    removeNetwork: async ({ id }) => {
      await networks.remove(parseOrThrow(networkId, id, "The network's id"));
      return { status: 204, json: null };
    },
    networkLeases: async ({ id }) => ({ json: networks.leases(parseOrThrow(networkId, id, "The network's id")) }),
    networkDoctor: async () => ({ json: await doctor() }),
    networkCounters: async ({ id }) => ({ json: await networks.counters(parseOrThrow(networkId, id, "The network's id")) }),
    testForward: async ({ id }, body) => ({ json: await networks.testForward(parseOrThrow(networkId, id, "The network's id"), body.protocol, body.hostPort) }),

    tasks: async () => ({ json: images.tasks.list() }),
    task: async ({ id }) => ({ json: images.tasks.get(parseTaskId(id)) }),
    cancelTask: async ({ id }) => ({ json: images.tasks.cancel(parseTaskId(id)) }),

    listImages: async (_, { formats }) => ({ json: await images.list(new Map(Object.entries(formats))) }),
    createImage: async (_, req) => ({ status: 201, json: await images.create(req) }),
    image: async ({ pool, file }, _, query) => {
      const format = query.has("format") ? parseOrThrow(diskFormat, query.get("format"), "The format") : null;
      return { json: await images.info(ref(pool, file), format) };
    },
    deleteImage: async ({ pool, file }, _, query) => {
      await images.remove({ ...ref(pool, file), volume: optionalVolume(query) });
      return { status: 204, json: null };
    },
    cloneImage: async ({ pool, file }, req) => ({ status: 201, json: await images.clone({ ...ref(pool, file), format: req.format }, req.to, req.mode) }),
    convertImage: async ({ pool, file }, req) => ({
      status: 202,
      json: images.convert({ ...ref(pool, file), format: req.sourceFormat }, { ...req.to, format: req.format }, { volume: req.volume }),
    }),
    resizeImage: async ({ pool, file }, req) => ({ json: await images.resize({ ...ref(pool, file), ...req }) }),
    snapshot: async ({ pool, file }, req) => ({ json: await images.snapshot({ ...ref(pool, file), format: req.format, volume: req.volume }, req.op, req.name) }),
    checkImage: async ({ pool, file }, req) => ({ json: await images.check({ ...ref(pool, file), format: req.format }) }),

    uploadParts: async () => ({ json: await images.parts() }),
    uploadOffset: async ({ pool, file }) => ({ json: { offset: await images.uploadOffset(ref(pool, file)) } }),
    cancelUpload: async ({ pool, file }) => {
      await images.cancelUpload(ref(pool, file));
      return { status: 204, json: null };
    },
    deleteIso: async ({ name }) => {
      await images.removeIso(parseOrThrow(isoName, name, "The ISO name"));
      return { status: 204, json: null };
    },
  };
  const plainRoutes = Object.keys(handlers) as PlainRouteName[];
  /** The route a request is for, with its path parameters; null when the API has none such. */
  const routeOf = (method: string | undefined, pathname: string): { name: PlainRouteName; params: Record<string, string> } | null => {
    for (const name of plainRoutes) {
      const params = AGENT_ROUTES[name].method === method ? matchPath(AGENT_ROUTES[name], pathname) : null;
      if (params) return { name, params };
    }
    return null;
  };

  /**
   * AGENT_ROUTES.upload: the body is the file itself, streamed to disk. A client
   * that sends `Expect: 100-continue` (the web does) gets `100 Continue` only once the
   * upload is accepted; a refusal before that is the final answer, and the client sends
   * nothing of the body.
   */
  const upload = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL, params: PathParams<AgentRoutes["upload"]>) => {
    // Kept here: a failed write destroys `req`, which then lets go of its socket.
    const socket = req.socket;
    let continued = false;
    try {
      const target = ref(params.pool, params.file);
      const query = parseOrThrow(AGENT_ROUTES.upload.query, Object.fromEntries(url.searchParams), AGENT_ROUTES.upload.query.description);
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
    if (req.method !== AGENT_ROUTES.upload.method) return null;
    try {
      return matchPath(AGENT_ROUTES.upload, new URL(req.url ?? "/", "http://agent").pathname);
    } catch {
      return null; // not a URL: handle() refuses it
    }
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.method === AGENT_ROUTES.events.method && req.url === AGENT_ROUTES.events.path) return streamEvents(supervisor, images, addresses, res);
    const started = Date.now();
    try {
      const url = new URL(req.url ?? "/", "http://agent");
      const uploadParams = uploadPath(req);
      if (uploadParams) return await upload(req, res, url, uploadParams);
      const found = routeOf(req.method, url.pathname);
      const route: AgentRoute | null = found && AGENT_ROUTES[found.name];
      // The whole body arrives before any answer, so every answer (a refusal too) reaches the
      // client whole and the connection can carry its next request.
      const raw = await readBody(req, route?.maxBodyBytes ?? MAX_BODY_BYTES);
      if (!found || !route) throw new GuesthouseError("not-found", `No such agent endpoint: ${req.method} ${url.pathname}`);
      // A route with a body schema takes JSON whatever its method (PUT /v1/networks/:id); a POST always may.
      const takesBody = req.method === "POST" || route.body !== undefined;
      if (!takesBody && raw.length > 0) throw new GuesthouseError("invalid-input", `${req.method} ${url.pathname} takes no body.`);
      const json = takesBody ? parseJson(req, raw) : undefined;
      const body = route.body ? parseOrThrow(route.body, json, route.body.description) : undefined;
      const query = route.query ? parseOrThrow(route.query, Object.fromEntries(url.searchParams), route.query.description) : url.searchParams;
      // The table and the handlers are keyed alike; TypeScript cannot follow one name through both.
      const reply = await (handlers[found.name] as unknown as AnyHandler)(found.params, body, query);
      if ("body" in reply) sendBytes(res, 200, route.bytes!, reply.body);
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
 * AGENT_ROUTES.vnc or .serial with the matching Upgrade: the guest's byte stream.
 * The guest's side is opened first, so a refusal is a real HTTP status with a message
 * (guest not running, no serial port, display unreachable); then the 101, then raw bytes.
 */
async function upgradeConsole(consoles: Consoles, req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  socket.on("error", () => {}); // a client gone mid-handshake; the relay handles errors after it
  const upgrade = req.headers.upgrade ?? "";
  const route = [AGENT_ROUTES.vnc, AGENT_ROUTES.serial].find((r) => r.upgrade === upgrade);
  const params = route ? matchPath(route, req.url ?? "") : null;
  if (!route || !params) return refuseUpgrade(socket, 404, "No such upgrade.", "not-found");
  const kind = CONSOLE_UPGRADES[route.upgrade];
  let stream;
  try {
    stream = await consoles.open(kind, parseId(params.id));
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
function streamEvents(supervisor: Supervisor, images: Images, addresses: Pick<AddressWatch, "all" | "on" | "off">, res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  // Now, not with the first line: a host with no guests and no tasks has nothing to say yet,
  // and the web learns from the answer itself that the agent is there.
  res.flushHeaders();
  const send = (status: GuestStatus) => res.write(`${JSON.stringify(status)}\n`);
  const sendTask = (task: TaskStatus) => res.write(`${JSON.stringify({ task })}\n`);
  for (const status of supervisor.list()) send(status);
  const sendAddresses = (line: GuestAddresses) => res.write(`${JSON.stringify({ addresses: line })}\n`);
  for (const task of images.tasks.list()) sendTask(task);
  for (const line of addresses.all()) sendAddresses(line);
  // Every supervised guest has been sent: a guest not among them is stopped.
  res.write(`${JSON.stringify({ synced: true })}\n`);
  supervisor.on("state", send);
  images.tasks.on("task", sendTask);
  addresses.on("addresses", sendAddresses);
  // A comment-free keep-alive: an empty line every 15 s lets both sides notice a dead peer.
  const keepAlive = setInterval(() => res.write("\n"), 15_000);
  res.on("close", () => {
    supervisor.off("state", send);
    images.tasks.off("task", sendTask);
    addresses.off("addresses", sendAddresses);
    clearInterval(keepAlive);
  });
}

function parseTaskId(id: string | undefined): string {
  return parseOrThrow(z.string().regex(/^t[a-z0-9]{6,40}$/, "A task id looks like t…"), id, "The task id");
}

function parseId(id: string | undefined): string {
  return parseOrThrow(volumeId, id, "The guest id");
}

/** A spec the router has parsed, once its id is the URL's. */
function specFor(id: string, spec: GuestSpec): GuestSpec {
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
