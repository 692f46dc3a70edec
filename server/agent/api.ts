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
 *   GET    /v1/events                  a stream of GuestStatus lines (NDJSON): every supervised
 *                                      guest at once, then each state change as it happens
 *   GET    /v1/guests/:id/vnc          Upgrade: guesthouse-vnc → the raw VNC byte stream
 *   POST   /v1/volumes                 { volume, format, sizeGiB } → 201
 *   POST   /v1/volumes/:volume/:format/clone   { to, mode: "full" | "linked" } → 201: a new qcow2 volume
 *   DELETE /v1/volumes/:volume/:format
 *
 * Errors are `{ code, message }` with the status from ERROR_CODES.
 */
import http from "node:http";
import net from "node:net";
import os from "node:os";
import { z } from "zod";
import { GuesthouseError, toGuesthouseError } from "../domain/errors";
import { refuseUpgrade } from "../http/refuse-upgrade";
import type { GuestStatus, HostInfo } from "../domain/types";
import { AGENT_VNC_UPGRADE, DISK_FORMATS } from "../domain/types";
import { diskGiB, guestSpecSchema, parseOrThrow, volumeId } from "../domain/validation";
import type { AgentConfig } from "./config";
import type { Supervisor } from "./supervisor";
import { qemuVersion, type Volumes } from "./volumes";

const MAX_BODY_BYTES = 256 * 1024;

const createVolumeSchema = z.strictObject({ volume: volumeId, format: z.enum(DISK_FORMATS), sizeGiB: diskGiB });
const idSchema = volumeId;
const cloneVolumeSchema = z.strictObject({ to: volumeId, mode: z.enum(["full", "linked"]) });

type Handler = (params: string[], body: unknown) => Promise<{ status?: number; json: unknown }>;

export function createAgentServer(config: AgentConfig, supervisor: Supervisor, volumes: Volumes): http.Server {
  let version: Promise<string> | null = null;

  const routes: Array<[string, RegExp, Handler]> = [
    ["GET", /^\/v1\/host$/, async () => {
      version ??= qemuVersion();
      const info: HostInfo = {
        hostname: os.hostname(),
        accelerator: config.accelerator,
        acceleratorReason: config.acceleratorReason,
        qemuVersion: await version,
        isos: await volumes.listIsos(),
      };
      return { json: info };
    }],
    ["GET", /^\/v1\/guests$/, async () => ({ json: supervisor.list() })],
    ["GET", /^\/v1\/guests\/([^/]+)$/, async ([id]) => ({ json: supervisor.status(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/argv$/, async ([id], body) => ({ json: { argv: supervisor.argvFor(specFor(id, body)) } })],
    ["POST", /^\/v1\/guests\/([^/]+)\/start$/, async ([id], body) => ({ json: await supervisor.start(specFor(id, body)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/shutdown$/, async ([id]) => ({ json: await supervisor.shutdown(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/reboot$/, async ([id], body) => ({ json: await supervisor.reboot(specFor(id, body)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/reset$/, async ([id]) => ({ json: await supervisor.reset(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/pause$/, async ([id]) => ({ json: await supervisor.pause(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/resume$/, async ([id]) => ({ json: await supervisor.resume(parseId(id)) })],
    ["POST", /^\/v1\/guests\/([^/]+)\/force-off$/, async ([id]) => ({ json: await supervisor.forceOff(parseId(id)) })],
    ["DELETE", /^\/v1\/guests\/([^/]+)$/, async ([id]) => {
      await supervisor.forget(parseId(id));
      return { status: 204, json: null };
    }],
    ["POST", /^\/v1\/volumes$/, async (_, body) => {
      const req = parseOrThrow(createVolumeSchema, body, "The volume request");
      await volumes.create(req.volume, req.format, req.sizeGiB);
      return { status: 201, json: req };
    }],
    ["POST", /^\/v1\/volumes\/([^/]+)\/([^/]+)\/clone$/, async ([volume, format], body) => {
      const req = parseOrThrow(cloneVolumeSchema, body, "The clone request");
      await volumes.clone(parseId(volume), parseOrThrow(z.enum(DISK_FORMATS), format, "The format"), req.to, req.mode);
      return { status: 201, json: req };
    }],
    ["DELETE", /^\/v1\/volumes\/([^/]+)\/([^/]+)$/, async ([volume, format]) => {
      await volumes.remove(parseId(volume), parseOrThrow(z.enum(DISK_FORMATS), format, "The format"));
      return { status: 204, json: null };
    }],
  ];

  const server = http.createServer(async (req, res) => {
    if (req.method === "GET" && req.url === "/v1/events") return streamEvents(supervisor, res);
    const started = Date.now();
    try {
      const url = new URL(req.url ?? "/", "http://agent");
      const route = routes.find(([method, pattern]) => method === req.method && pattern.test(url.pathname));
      if (!route) throw new GuesthouseError("not-found", `No such agent endpoint: ${req.method} ${url.pathname}`);
      const params = route[1].exec(url.pathname)!.slice(1).map(decodeURIComponent);
      const body = req.method === "POST" ? await readJson(req) : undefined;
      const { status = 200, json } = await route[2](params, body);
      send(res, status, json);
    } catch (err) {
      const error = toGuesthouseError(err);
      if (error.code === "internal") console.error(`agent: ${req.method} ${req.url} failed:`, error.detail);
      send(res, error.httpStatus, error.toJSON());
    } finally {
      if (process.env.GUESTHOUSE_AGENT_LOG === "1") console.log(`agent: ${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms`);
    }
  });

  server.on("upgrade", (req, socket, head) => {
    const match = /^\/v1\/guests\/([^/]+)\/vnc$/.exec(req.url ?? "");
    if (!match || req.headers.upgrade !== AGENT_VNC_UPGRADE) return refuseUpgrade(socket, 404, "No such upgrade.");
    let vncPath: string;
    try {
      vncPath = supervisor.vncSocket(parseId(match[1]));
    } catch (err) {
      const error = toGuesthouseError(err);
      return refuseUpgrade(socket, error.httpStatus, error.message);
    }
    const vnc = net.createConnection({ path: vncPath });
    let connected = false;
    vnc.once("connect", () => {
      connected = true;
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${AGENT_VNC_UPGRADE}\r\n\r\n`);
      if (head.length) vnc.write(head);
      // pipe() pauses the faster side while the slower one drains, in both directions,
      // and ends the other side only after everything read was written.
      vnc.pipe(socket);
      socket.pipe(vnc);
    });
    vnc.once("error", (err) => {
      if (connected) socket.destroy();
      else refuseUpgrade(socket, 502, `The guest's display is not reachable: ${err.message}`);
    });
    socket.once("error", () => vnc.destroy());
    socket.once("close", () => vnc.destroy());
  });

  return server;
}

/** Pushes state changes as they happen, so pages learn of them without polling. */
function streamEvents(supervisor: Supervisor, res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  const send = (status: GuestStatus) => res.write(`${JSON.stringify(status)}\n`);
  for (const status of supervisor.list()) send(status);
  supervisor.on("state", send);
  // A comment-free keep-alive: an empty line every 15 s lets both sides notice a dead peer.
  const keepAlive = setInterval(() => res.write("\n"), 15_000);
  res.on("close", () => {
    supervisor.off("state", send);
    clearInterval(keepAlive);
  });
}

function parseId(id: string | undefined): string {
  return parseOrThrow(idSchema, id, "The guest id");
}

function specFor(id: string | undefined, body: unknown) {
  const spec = parseOrThrow(guestSpecSchema, body, "The guest spec");
  if (spec.id !== parseId(id)) throw new GuesthouseError("invalid-input", "The spec's id does not match the URL.");
  return spec;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  if (!(req.headers["content-type"] ?? "").startsWith("application/json")) {
    throw new GuesthouseError("invalid-input", "The agent accepts only application/json bodies.");
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new GuesthouseError("invalid-input", `The request body is larger than ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8") || "null");
  } catch {
    throw new GuesthouseError("invalid-input", "The request body is not valid JSON.");
  }
}

function send(res: http.ServerResponse, status: number, json: unknown): void {
  if (status === 204) {
    res.writeHead(204).end();
    return;
  }
  const body = JSON.stringify(json);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
}
