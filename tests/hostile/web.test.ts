/**
 * The web under hostile input, against the real stack on loopback: the real web server
 * (the custom server and the built Next.js app), a real agent running a real guest in
 * QEMU, and a real SQLite database. No browser: server actions are called over HTTP the
 * way the browser's runtime calls them (POST with the action's id, the arguments encoded
 * by React's own encoder), pages and routes with the session cookie.
 *
 * - Console websockets (/ws/console/<guest>, /ws/serial/<guest>): malformed and oversized
 *   upgrades (key, version, method, Origin, session, huge headers, odd paths, connections
 *   reset mid-check), then hostile frames after a valid upgrade (oversized, invalid opcodes,
 *   unmasked, fragmented garbage, bad close frames). Each is refused or closed with the
 *   right code, and the server keeps answering.
 * - Tickets: forged, reused (also by racing connections), expired, cross-guest, stolen,
 *   wrong kind, of a revoked link: all refused with a reason; none opens a console.
 * - Another member ("mallory", same team) tries every route and server action she can
 *   reach on alice's guest, disks, upload and tasks, property-based (fast-check): every
 *   answer a refusal that names nothing of alice's, and alice's rows, files and running
 *   guest exactly as they were. The event stream tells her nothing of alice's guest.
 * - Names with shell metacharacters, "..", NUL and unicode in uploads, guest and disk
 *   names: a clear 4xx, nothing written outside the storage folder.
 *
 * Figures go to .cache/hostile-figures.json ("web") for docs/security.md.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { createSession, SESSION_COOKIE } from "../../server/auth/sessions";
import { hashSecret } from "../../server/auth/tokens";
import { mintShareTicket, mintTicket } from "../../server/console/tickets";
import { CONSOLE_TICKET_TTL_MS, POWER_ACTIONS } from "../../server/domain/types";
import { waitFor, within } from "../helpers/agent";
import { freePort } from "../helpers/net";
import { startTestStack, type TestStack } from "../helpers/web";
import { recordFigures } from "./figures";

/** React's own encoder of server action arguments: what the browser's runtime sends. */
const { encodeReply } = createRequire(import.meta.url)("next/dist/compiled/react-server-dom-turbopack/client.node") as {
  encodeReply(args: unknown[]): Promise<string | FormData>;
};

/** Server actions by exported name → id, from the build's manifest (scripts/test.sh builds first). */
function actionIds(): Map<string, string> {
  const manifest = JSON.parse(fs.readFileSync(".next/server/server-reference-manifest.json", "utf8")) as { node: Record<string, { exportedName?: string }> };
  const ids = new Map<string, string>();
  for (const [id, entry] of Object.entries(manifest.node)) {
    assert.ok(entry.exportedName && !ids.has(entry.exportedName), `one action per name (${entry.exportedName})`);
    ids.set(entry.exportedName, id);
  }
  return ids;
}

interface ActionResult {
  ok: boolean;
  code?: string;
  error?: string;
  data?: unknown;
}

interface ActionAnswer {
  status: number;
  text: string;
  /** The action's return value; null when Next answered with an error instead (the action threw past authedAction, or never ran). */
  result: ActionResult | null;
}

/** The action's return value in a React Flight answer: row 0 names the row that holds it. */
function flightResult(text: string): ActionResult | null {
  const rows = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+):(.*)$/.exec(line);
    if (m) rows.set(m[1]!, m[2]!);
  }
  try {
    const ref = (JSON.parse(rows.get("0") ?? "null") as { a?: string } | null)?.a;
    const row = ref?.startsWith("$@") ? rows.get(ref.slice(2)) : undefined;
    if (row === undefined || row.startsWith("E")) return null;
    const value = JSON.parse(row) as ActionResult;
    return typeof value === "object" && value !== null && typeof value.ok === "boolean" ? value : null;
  } catch {
    return null;
  }
}

/** A frame a client sends: masked unless told otherwise, the length as given (it may lie). */
function frame(opcode: number, payload: Buffer = Buffer.alloc(0), o: { fin?: boolean; rsv?: number; mask?: boolean; length?: number | bigint } = {}): Buffer {
  const { fin = true, rsv = 0, mask = true } = o;
  const length = BigInt(o.length ?? payload.length);
  const head: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  let ext = Buffer.alloc(0);
  if (length < 126n) head.push((mask ? 0x80 : 0) | Number(length));
  else if (length < 65536n) {
    head.push((mask ? 0x80 : 0) | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(length));
  } else {
    head.push((mask ? 0x80 : 0) | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(length);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), ext, payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

const closePayload = (code: number, reason = "") => {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code);
  b.write(reason, 2);
  return b;
};

/** The frames a server sent (unmasked), as far as they are whole. */
function serverFrames(data: Buffer): Array<{ opcode: number; payload: Buffer }> {
  const frames: Array<{ opcode: number; payload: Buffer }> = [];
  let at = 0;
  while (at + 2 <= data.length) {
    const opcode = data[at]! & 0x0f;
    let length = data[at + 1]! & 0x7f;
    let start = at + 2;
    if (length === 126) {
      if (start + 2 > data.length) break;
      length = data.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      if (start + 8 > data.length) break;
      length = Number(data.readBigUInt64BE(start));
      start += 8;
    }
    if (start + length > data.length) break;
    frames.push({ opcode, payload: data.subarray(start, start + length) });
    at = start + length;
  }
  return frames;
}

interface RawAnswer {
  /** The HTTP status, 0 when the server closed without answering. */
  status: number;
  head: string;
  body: string;
  /** Open after a 101; closed otherwise. */
  socket: net.Socket;
  /** What came after the 101's headers. */
  rest: Buffer;
}

/**
 * Sends raw bytes on a new connection and reads the answer: a 101 (the socket left open,
 * paused, for the frames that follow), a whole other answer, or whatever came before the
 * server closed (status 0 if nothing did).
 */
function rawExchange(port: number, bytes: string | Buffer, { reset }: { reset?: "at-once" | "next-turn" | number } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: "127.0.0.1", port });
    let data = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no answer within 15 s to ${JSON.stringify(String(bytes).slice(0, 120))}`)), 15_000);
    const parse = () => {
      const end = data.indexOf("\r\n\r\n");
      const head = (end >= 0 ? data.subarray(0, end) : data).toString("latin1");
      const rest = end >= 0 ? data.subarray(end + 4) : Buffer.alloc(0);
      return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), head, complete: end >= 0, rest };
    };
    /** A non-101 answer is whole once its body is (the server may keep the connection for another request). */
    const whole = (a: ReturnType<typeof parse>) => {
      if (!a.complete) return false;
      if (a.status === 101) return true;
      const length = /\r\ncontent-length: *(\d+)/i.exec(a.head)?.[1];
      if (length !== undefined) return a.rest.length >= Number(length);
      if (/\r\ntransfer-encoding: *chunked/i.test(a.head)) return a.rest.includes("\r\n0\r\n\r\n") || a.rest.subarray(0, 5).toString() === "0\r\n\r\n";
      return false;
    };
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off("data", onData);
      if (err) {
        socket.destroy();
        reject(err);
        return;
      }
      const answer = parse();
      if (answer.status === 101) socket.pause();
      else socket.destroy();
      let body = answer.rest.toString("utf8");
      if (/\r\ntransfer-encoding: *chunked/i.test(answer.head)) body = body.replace(/(^|\r\n)[0-9a-f]+\r\n/gi, "");
      resolve({ status: answer.status, head: answer.head, body, socket, rest: answer.rest });
    };
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (whole(parse())) finish();
    };
    socket.on("data", onData);
    socket.on("error", () => {});
    socket.once("close", () => finish());
    socket.once("connect", () => {
      socket.write(bytes);
      if (reset !== undefined) {
        // The connection is reset (RST) at once, on the event loop's next turn, or this many ms after the request went out; there is no answer to wait for.
        const rst = () => {
          socket.resetAndDestroy();
          finish();
        };
        if (reset === "at-once") rst();
        else if (reset === "next-turn") setImmediate(rst);
        else setTimeout(rst, reset);
      }
    });
  });
}

/** Reads a socket until the server closes it; returns every byte it sent. */
function untilClosed(socket: net.Socket, first: Buffer, timeoutMs = 15_000): Promise<Buffer> {
  let data = first;
  socket.on("data", (c: Buffer) => (data = Buffer.concat([data, c])));
  socket.resume();
  const closed = new Promise<Buffer>((resolve) => {
    if (socket.destroyed) resolve(data);
    else socket.once("close", () => resolve(data));
  });
  return within("the server to close the websocket", closed, timeoutMs);
}

/** A valid Sec-WebSocket-Key: 16 random bytes, base64. */
const newKey = () => randomBytes(16).toString("base64");

describe("the web under hostile input", () => {
  let stack: TestStack;
  let actions: Map<string, string>;
  const ids = { alice: "", mallory: "" };
  const cookies = { alice: "", mallory: "" };
  /** Alice's objects (the other member's), and mallory's own. */
  const A = { guest: "", guestDisk: "", guestDiskFile: "", disk: "", diskFile: "ledger-7k3.qcow2", part: "partial-7k3.raw", partBytes: 0, share: "", shareRevoked: "", volumes: [] as string[], tasks: [] as string[] };
  const M = { guest: "", disk: "" };
  const GUEST_NAME = "vault-7k3";
  const SHARE_LABEL = "for-eyes-7k3";
  const began = Date.now();
  const failures: string[] = [];
  const figures = {
    upgradesTried: 0,
    upgradesRefused: 0,
    upgradesOpened: 0,
    resetsMidUpgrade: 0,
    frameCasesTried: 0,
    frameCasesClosedCleanly: 0,
    ticketsTried: 0,
    ticketsRefused: 0,
    crossMemberRequests: 0,
    crossMemberRefused: 0,
    crossMemberLeaks: 0,
    listPagesChecked: 0,
    eventsSeenByMallory: 0,
    namesTried: 0,
    namesRefused: 0,
    namesAccepted: 0,
  };
  const base = () => stack.baseUrl;
  const db = () => stack.database.db;

  /** Calls a server action as the holder of `cookie`, posted to `at` (a page's path). */
  const act = async (cookie: string, name: string, args: unknown[], at = "/"): Promise<ActionAnswer> => {
    const id = actions.get(name);
    assert.ok(id, `the build has the server action ${name}`);
    const body = await encodeReply(args);
    const res = await fetch(`${base()}${at}`, {
      method: "POST",
      headers: { cookie, origin: base(), "next-action": id, accept: "text/x-component", ...(typeof body === "string" ? { "content-type": "text/plain;charset=UTF-8" } : {}) },
      body,
      redirect: "manual",
    });
    const text = await res.text();
    return { status: res.status, text, result: flightResult(text) };
  };
  /** The action's data, failing the test with its error if it did not succeed. */
  const must = async <T>(cookie: string, name: string, args: unknown[]): Promise<T> => {
    const answer = await act(cookie, name, args);
    assert.ok(answer.result?.ok, `${name} succeeds (${answer.status} ${JSON.stringify(answer.result) ?? answer.text.slice(0, 300)})`);
    return answer.result.data as T;
  };

  /** One HTTP request with the path exactly as written (no normalization), as a browser of this origin would send it. */
  const request = (method: string, target: string, o: { cookie?: string; body?: Buffer; headers?: Record<string, string | number> } = {}) =>
    new Promise<{ status: number; text: string; type: string; location?: string }>((resolve, reject) => {
      const headers: Record<string, string | number> = { origin: base(), ...(o.cookie ? { cookie: o.cookie } : {}), ...(o.body ? { "content-length": o.body.length } : {}), ...o.headers };
      const req = http.request({ host: "127.0.0.1", port: stack.port, method, path: target, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), type: String(res.headers["content-type"] ?? ""), location: res.headers.location }));
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${target}: no answer in 30 s`)));
      req.on("error", reject);
      req.end(o.body);
    });

  /** The web still answers a plain request. */
  const alive = async (after: string) => {
    const answer = await fetch(`${base()}/login`).catch((err: Error) => ({ status: `failed: ${err.message}` }));
    if (answer.status !== 200) failures.push(`after ${after}: the web did not answer (${answer.status})`);
    assert.equal(answer.status, 200, `after ${after}, the web still answers`);
  };

  const wsPath = (kind: "vnc" | "serial", guestId: string, ticket: string) => `/ws/${kind === "vnc" ? "console" : "serial"}/${guestId}?ticket=${encodeURIComponent(ticket)}`;
  const upgradeRequest = (target: string, headers: Record<string, string | undefined> = {}, method = "GET", version = "HTTP/1.1") => {
    const all: Record<string, string | undefined> = {
      host: `127.0.0.1:${stack.port}`,
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-version": "13",
      "sec-websocket-key": newKey(),
      origin: base(),
      ...headers,
    };
    const lines = Object.entries(all).flatMap(([k, v]) => (v === undefined ? [] : [`${k}: ${v}\r\n`]));
    return `${method} ${target} ${version}\r\n${lines.join("")}\r\n`;
  };
  const ticketFor = async (userId: string, guestId: string, kind: "vnc" | "serial", now = new Date()) => (await mintTicket(db(), userId, guestId, now, { kind })).ticket;
  const openSessions = () => db().consoleSession.count({ where: { endedAt: null } });

  before(async () => {
    stack = await startTestStack();
    actions = actionIds();
    const admin = await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    // Members of two teams: alice's team's guests are no business of mallory's (what a
    // teammate may see and do is the policy's unit test, tests/unit/policy.test.ts).
    const malloryTeam = await db().team.create({ data: { name: "mallorys-team" } });
    const alice = await db().user.create({ data: { username: "alice", passwordHash: "x", role: "member", teamId: admin.teamId, memberships: { create: { teamId: admin.teamId, role: "member" } } } });
    const mallory = await db().user.create({ data: { username: "mallory", passwordHash: "x", role: "member", teamId: malloryTeam.id, memberships: { create: { teamId: malloryTeam.id, role: "member" } } } });
    ids.alice = alice.id;
    ids.mallory = mallory.id;
    cookies.alice = `${SESSION_COOKIE}=${(await createSession(db(), alice.id)).secret}`;
    cookies.mallory = `${SESSION_COOKIE}=${(await createSession(db(), mallory.id)).secret}`;

    // Alice's things, made through the same actions her pages call: a guest booting the demo ISO (running), a free disk with a snapshot, two view-only links, an interrupted upload.
    const form = (fields: Record<string, string>) => {
      const fd = new FormData();
      for (const [k, v] of Object.entries(fields)) fd.set(k, v);
      return fd;
    };
    const guest = await must<{ id: string }>(cookies.alice, "createGuest", [
      form({ name: GUEST_NAME, vcpus: "1", memoryMiB: "256", diskGiB: "1", diskBus: "virtio", iso: "demo.iso", network: "user", boot: "cdrom" }),
    ]);
    A.guest = guest.id;
    assert.equal(await must(cookies.alice, "powerGuest", [A.guest, "start"]), "running");
    const disk = await must<{ id: string }>(cookies.alice, "createDisk", [{ pool: "default", file: A.diskFile, format: "qcow2", size: "16M", encrypt: false, passphrase: "" }]);
    A.disk = disk.id;
    await must(cookies.alice, "snapshotDisk", [A.disk, { op: "create", name: "before" }]);
    await must(cookies.alice, "createShareLink", [A.guest, "1h", SHARE_LABEL]);
    await must(cookies.alice, "createShareLink", [A.guest, "1h", "to-revoke"]);
    const shares = await db().consoleShare.findMany({ where: { guestId: A.guest }, orderBy: { createdAt: "asc" } });
    A.share = shares.find((s) => s.label === SHARE_LABEL)!.id;
    A.shareRevoked = shares.find((s) => s.label === "to-revoke")!.id;
    await must(cookies.alice, "revokeShareLink", [A.guest, A.shareRevoked]);
    const guestDisk = await db().disk.findFirstOrThrow({ where: { guestId: A.guest } });
    A.guestDisk = guestDisk.id;
    A.guestDiskFile = guestDisk.file;
    // An upload alice broke off: 256 KiB of 1 MiB arrive, then the connection goes.
    await new Promise<void>((resolve, reject) => {
      const req = http.request({
        host: "127.0.0.1",
        port: stack.port,
        method: "PUT",
        path: `/upload/default/${A.part}?size=${2 ** 20}`,
        headers: { cookie: cookies.alice, origin: base(), "content-length": 2 ** 20 },
      });
      req.on("error", () => {});
      req.write(Buffer.alloc(256 * 1024, 7));
      waitFor("the part to reach the host", async () => (await stack.agent.client.uploadOffset({ pool: "default", file: A.part })) >= 256 * 1024, 20_000, 50)
        .then(() => {
          req.destroy();
          resolve();
        })
        .catch(reject);
    });
    await waitFor("the broken-off upload to be recorded", () => db().task.findFirst({ where: { target: `default/${A.part}`, state: "failed" } }), 20_000);
    A.partBytes = await stack.agent.client.uploadOffset({ pool: "default", file: A.part });
    A.volumes = (await db().disk.findMany({ where: { ownerId: alice.id } })).map((d) => d.volume);
    A.tasks = (await db().task.findMany({ where: { userId: alice.id } })).map((t) => t.id);
    assert.ok(A.tasks.length >= 3, "alice's tasks are recorded");

    // Mallory's own: a guest that boots from its empty disk (stopped), and a free disk.
    const own = await must<{ id: string }>(cookies.mallory, "createGuest", [
      form({ name: "mallory-box", vcpus: "1", memoryMiB: "128", diskGiB: "1", diskBus: "virtio", iso: "", network: "none", boot: "disk" }),
    ]);
    M.guest = own.id;
    M.disk = (await must<{ id: string }>(cookies.mallory, "createDisk", [{ pool: "default", file: "mallory-own.qcow2", format: "qcow2", size: "16M", encrypt: false, passphrase: "" }])).id;
  });

  after(async () => {
    if (failures.length) console.log(`failures found:\n  ${failures.join("\n  ")}`);
    recordFigures("web", { ...figures, failuresFound: failures.length, seconds: Math.round((Date.now() - began) / 100) / 10 });
    await stack?.cleanup();
  });

  test("malformed, oversized and cross-origin websocket upgrades are refused with a status and reason; the web keeps serving", { timeout: 90_000 }, async () => {
    const sessionsBefore = await db().consoleSession.count();
    const port = stack.port;
    /** One refused upgrade: the expected status (0: closed without an answer), and the reason the body must give. */
    const refused = async (label: string, bytes: string | Buffer, status: number, reason?: RegExp) => {
      figures.upgradesTried++;
      const answer = await rawExchange(port, bytes);
      answer.socket.destroy();
      if (answer.status === 101) failures.push(`${label}: the upgrade was accepted`);
      assert.notEqual(answer.status, 101, `${label}: accepted`);
      assert.equal(answer.status, status, `${label}: ${answer.head.split("\r\n")[0]} ${answer.body.slice(0, 200)}`);
      if (reason) assert.match((JSON.parse(answer.body) as { message: string }).message, reason, label);
      figures.upgradesRefused++;
      await alive(label);
    };
    const vnc = async () => wsPath("vnc", A.guest, await ticketFor(ids.alice, A.guest, "vnc"));
    const serial = async () => wsPath("serial", A.guest, await ticketFor(ids.alice, A.guest, "serial"));
    const me = { cookie: cookies.alice };

    await refused("no Sec-WebSocket-Key", upgradeRequest(await vnc(), { ...me, "sec-websocket-key": undefined }), 400, /websocket connections only/);
    await refused("a garbage Sec-WebSocket-Key", upgradeRequest(await vnc(), { ...me, "sec-websocket-key": "!!not-base64!!" }), 400, /websocket/);
    await refused("a key of 32 bytes", upgradeRequest(await serial(), { ...me, "sec-websocket-key": randomBytes(32).toString("base64") }), 400);
    await refused("a key with junk after it", upgradeRequest(await serial(), { ...me, "sec-websocket-key": `${newKey()} x` }), 400);
    await refused("version 8", upgradeRequest(await vnc(), { ...me, "sec-websocket-version": "8" }), 400);
    await refused("versions 13 and 8", upgradeRequest(await vnc(), { ...me, "sec-websocket-version": "13, 8" }), 400);
    await refused("no version", upgradeRequest(await serial(), { ...me, "sec-websocket-version": undefined }), 400);
    await refused("an upgrade to h2c", upgradeRequest(await vnc(), { ...me, upgrade: "h2c" }), 400);
    await refused("a POST upgrade", upgradeRequest(await vnc(), me, "POST"), 400);
    await refused("an Origin of another site", upgradeRequest(await vnc(), { ...me, origin: "http://evil.example" }), 403, /own pages/);
    await refused("Origin null", upgradeRequest(await serial(), { ...me, origin: "null" }), 403);
    await refused("an Origin on another port", upgradeRequest(await vnc(), { ...me, origin: `http://127.0.0.1:${port + 1}` }), 403);
    await refused("an Origin whose host only starts like ours", upgradeRequest(await vnc(), { ...me, origin: `http://127.0.0.1:${port}.evil.example` }), 403);
    await refused("no Origin", upgradeRequest(await serial(), { ...me, origin: undefined }), 403);
    await refused("no session", upgradeRequest(await vnc()), 401, /Log in/);
    await refused("a made-up session", upgradeRequest(await vnc(), { cookie: `${SESSION_COOKIE}=${randomBytes(32).toString("base64url")}` }), 401);
    await refused("a session cookie of 100 KiB", upgradeRequest(await vnc(), { cookie: `${SESSION_COOKIE}=${"A".repeat(100 * 1024)}` }), 431);
    await refused("a header of 64 KiB", upgradeRequest(await serial(), { ...me, "x-junk": "j".repeat(64 * 1024) }), 431);
    await refused("4,000 headers", upgradeRequest(await vnc(), { ...me, ...Object.fromEntries(Array.from({ length: 4000 }, (_, i) => [`x-h${i}`, "1"])) }), 431);
    await refused("a ticket of 32 KiB", upgradeRequest(wsPath("vnc", A.guest, "A".repeat(32 * 1024)), me), 431);
    await refused("a ticket of 8 KiB", upgradeRequest(wsPath("vnc", A.guest, "A".repeat(8 * 1024)), me), 401, /missing or malformed/);
    await refused("no ticket", upgradeRequest(`/ws/console/${A.guest}`, me), 401, /missing or malformed/);
    await refused("no guest", upgradeRequest(`/ws/console?ticket=${await ticketFor(ids.alice, A.guest, "vnc")}`, me), 404, /No such console/);
    await refused("the guest's id in capitals", upgradeRequest(`/ws/console/${A.guest.toUpperCase()}?ticket=x`, me), 404);
    await refused("a path climbing out", upgradeRequest(`/ws/console/../console/${A.guest}?ticket=x`, me), 404);
    await refused("an encoded NUL after the id", upgradeRequest(`/ws/serial/${A.guest}%00?ticket=x`, me), 404);
    await refused("a path that is no console", upgradeRequest(`/ws/consoles/${A.guest}`, me), 0);
    await refused("HTTP/1.0 without a Host", upgradeRequest(await vnc(), { ...me, host: undefined }, "GET", "HTTP/1.0"), 403);
    await refused("HTTP/1.1 without a Host", upgradeRequest(await vnc(), { ...me, host: undefined }), 403);
    await refused("a NUL in the request line", Buffer.from(`GET /ws/console/${A.guest}\0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`, "latin1"), 400);
    await refused("a bare LF between headers", `GET ${await vnc()} HTTP/1.1\r\nHost: 127.0.0.1:${port}\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`, 400);

    // Property: any mix of valid and broken handshake fields opens a console only when every one is valid.
    const field = <T>(valid: T, ...broken: T[]) => fc.oneof({ weight: 3, arbitrary: fc.constant({ valid: true, value: valid }) }, { weight: 1, arbitrary: fc.constantFrom(...broken.map((value) => ({ valid: false, value }))) });
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          kind: fc.constantFrom<"vnc" | "serial">("vnc", "serial"),
          method: field("GET", "POST", "PUT", "OPTIONS"),
          upgrade: field<string>("websocket", "WebSocket2", "h2c", ""),
          version: field<string | undefined>("13", "12", undefined, "013", "13, 8"),
          key: field<string | undefined>("fresh", undefined, "short==", randomBytes(17).toString("base64"), "%%%%%%%%%%%%%%%%%%%%%%=="),
          origin: field<string | undefined>("same", "http://evil.example", undefined, "null", "file://"),
          cookie: field<"alice" | "mallory" | "none" | "junk">("alice", "mallory", "none", "junk"),
          ticket: field<"good" | "other-kind" | "forged" | "used">("good", "other-kind", "forged", "used"),
        }),
        async (c) => {
          const kind = c.kind;
          const otherKind = kind === "vnc" ? "serial" : "vnc";
          let ticket = await ticketFor(ids.alice, A.guest, c.ticket.value === "other-kind" ? otherKind : kind);
          if (c.ticket.value === "forged") ticket = randomBytes(32).toString("base64url");
          if (c.ticket.value === "used") await db().consoleTicket.update({ where: { id: hashSecret(ticket) }, data: { usedAt: new Date() } });
          const cookie = { alice: cookies.alice, mallory: cookies.mallory, none: undefined, junk: `${SESSION_COOKIE}=%E0%A4%A` }[c.cookie.value];
          const headers: Record<string, string | undefined> = {
            cookie,
            upgrade: c.upgrade.value || undefined,
            "sec-websocket-version": c.version.value,
            "sec-websocket-key": c.key.value === "fresh" ? newKey() : c.key.value,
            origin: c.origin.value === "same" ? base() : c.origin.value,
          };
          figures.upgradesTried++;
          const answer = await rawExchange(port, upgradeRequest(wsPath(kind, A.guest, ticket), headers, c.method.value));
          const allValid = Object.values(c).every((f) => typeof f === "string" || f.valid);
          if (answer.status === 101) {
            figures.upgradesOpened++;
            if (!allValid) failures.push(`handshake ${JSON.stringify(c)} was accepted`);
            answer.socket.end(frame(0x8, closePayload(1000)));
            await untilClosed(answer.socket, answer.rest);
          } else {
            answer.socket.destroy();
            figures.upgradesRefused++;
            if (allValid) failures.push(`a valid handshake was refused: ${answer.head.split("\r\n")[0]} ${answer.body}`);
          }
          return allValid === (answer.status === 101);
        },
      ),
      { numRuns: 40, endOnFailure: true },
    );
    await alive("the handshake property");
    assert.equal(await db().consoleSession.count(), sessionsBefore + figures.upgradesOpened, "only the valid handshakes opened a console");
    await waitFor("every console the property opened to be recorded as ended", async () => (await openSessions()) === 0, 15_000);
  });

  test("connections reset while the bridge checks an upgrade end quietly (no uncaught socket error), also on a web that has served no page yet", { timeout: 90_000 }, async () => {
    // A second web on the same database and agent that has served no page: Next adds an upgrade
    // listener of its own (which catches socket errors) only once it has served a request, so only
    // there does the bridge stand alone.
    const port = await freePort();
    let out = "";
    const fresh = spawn(process.execPath, ["--import", "tsx", "server/web/main.ts"], { env: { ...stack.env, GUESTHOUSE_PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
    fresh.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    fresh.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    try {
      await waitFor("the second web to listen", () => {
        if (fresh.exitCode !== null) throw new Error(`the second web exited: ${out}`);
        return out.includes("Guesthouse is at");
      }, 60_000);
      // The reset comes at once, a turn of the event loop later, or up to 20 ms later: while the bridge reads the ticket from the database, opens the guest's stream, or answers.
      const tickets: Array<() => Promise<{ kind: "vnc" | "serial"; ticket: string; headers: Record<string, string> }>> = [
        async () => ({ kind: "vnc", ticket: randomBytes(32).toString("base64url"), headers: {} }),
        async () => ({ kind: "vnc", ticket: await ticketFor(ids.alice, A.guest, "vnc"), headers: {} }),
        async () => ({ kind: "serial", ticket: await ticketFor(ids.alice, A.guest, "serial"), headers: {} }),
        async () => ({ kind: "serial", ticket: await ticketFor(ids.alice, A.guest, "serial"), headers: { origin: "http://evil.example" } }),
      ];
      const when: Array<"at-once" | "next-turn" | number> = ["at-once", "next-turn", "next-turn", "next-turn", 1, 2, 3, 5, 8, 12, 20];
      for (const target of [port, stack.port]) {
        const at = { host: `127.0.0.1:${target}`, origin: `http://127.0.0.1:${target}`, cookie: cookies.alice };
        for (const reset of when) {
          for (const make of tickets) {
            const { kind, ticket, headers } = await make();
            await rawExchange(target, upgradeRequest(wsPath(kind, A.guest, ticket), { ...at, ...headers }), { reset });
            figures.resetsMidUpgrade++;
          }
        }
        // Both still refuse a forged ticket with a whole answer, and open a valid console.
        const later = await rawExchange(target, upgradeRequest(wsPath("vnc", A.guest, randomBytes(32).toString("base64url")), at));
        assert.equal(later.status, 401);
        const valid = await rawExchange(target, upgradeRequest(wsPath("serial", A.guest, await ticketFor(ids.alice, A.guest, "serial")), at));
        assert.equal(valid.status, 101);
        valid.socket.end(frame(0x8, closePayload(1000)));
        await untilClosed(valid.socket, valid.rest);
      }
      await waitFor("the consoles of reset connections to be closed", async () => (await openSessions()) === 0, 15_000);
      await alive("connections reset mid-upgrade");
    } finally {
      if (fresh.exitCode === null && fresh.signalCode === null) {
        const exited = new Promise((r) => fresh.once("exit", r));
        fresh.kill("SIGTERM");
        await within("the second web to stop", exited, 10_000).catch(() => fresh.kill("SIGKILL"));
      }
    }
    const uncaught = [...out.split("\n"), ...stack.output().split("\n")].filter((l) => /uncaught|unhandled/i.test(l));
    if (uncaught.length) failures.push(`uncaught errors after reset upgrades: ${uncaught.slice(0, 3).join(" | ")}`);
    assert.deepEqual(uncaught, [], "a web logged an uncaught error");
  });

  test("after a valid upgrade, oversized frames, bad opcodes, unmasked and fragmented garbage close the console with the right code", { timeout: 90_000 }, async () => {
    const open = async (kind: "vnc" | "serial") => {
      const answer = await rawExchange(stack.port, upgradeRequest(wsPath(kind, A.guest, await ticketFor(ids.alice, A.guest, kind)), { cookie: cookies.alice }));
      assert.equal(answer.status, 101, `${kind} console opens: ${answer.head} ${answer.body}`);
      return answer;
    };
    // Controls: a well-formed ping is answered, a well-formed close is returned (so the frames below are what is wrong, not the framing).
    for (const kind of ["vnc", "serial"] as const) {
      const c = await open(kind);
      const payload = randomBytes(8);
      c.socket.write(frame(0x9, payload));
      let seen = c.rest;
      c.socket.on("data", (d: Buffer) => (seen = Buffer.concat([seen, d])));
      c.socket.resume();
      await waitFor(`a pong on the ${kind} console`, () => serverFrames(seen).some((f) => f.opcode === 0xa && f.payload.equals(payload)), 10_000, 20);
      if (kind === "vnc") {
        const first = serverFrames(seen)[0]!;
        assert.equal(first.opcode, 0x1, "the screen's first message is text");
        assert.match(first.payload.toString(), /^\{"password":"[^"]+"\}$/);
      }
      c.socket.write(frame(0x8, closePayload(1000)));
      await untilClosed(c.socket, Buffer.alloc(0));
      const close = serverFrames(seen).find((f) => f.opcode === 0x8);
      assert.equal(close?.payload.readUInt16BE(0), 1000, `the ${kind} console returns a clean close`);
    }

    const MiB = 2 ** 20;
    const cases: Array<{ label: string; bytes: () => Buffer[]; code: number }> = [
      { label: "a frame announcing 5 MiB (over the 4 MiB limit)", bytes: () => [frame(0x2, Buffer.alloc(16), { length: 5 * MiB })], code: 1009 },
      { label: "a frame announcing 2^63 - 1 bytes", bytes: () => [frame(0x2, Buffer.alloc(16), { length: 2n ** 63n - 1n })], code: 1009 },
      { label: "a message of 5 fragments of 1 MiB (over the limit in total)", bytes: () => [frame(0x2, Buffer.alloc(MiB), { fin: false }), ...Array.from({ length: 4 }, (_, i) => frame(0x0, Buffer.alloc(MiB), { fin: i === 3 }))], code: 1009 },
      { label: "opcode 3 (reserved data)", bytes: () => [frame(0x3, Buffer.from("x"))], code: 1002 },
      { label: "opcode 11 (reserved control)", bytes: () => [frame(0xb)], code: 1002 },
      { label: "an unmasked client frame", bytes: () => [frame(0x2, Buffer.from("RFB"), { mask: false })], code: 1002 },
      { label: "RSV1 set without an extension", bytes: () => [frame(0x2, Buffer.from("x"), { rsv: 4 })], code: 1002 },
      { label: "a continuation with nothing to continue", bytes: () => [frame(0x0, Buffer.from("x"))], code: 1002 },
      { label: "a new message inside a fragmented one", bytes: () => [frame(0x2, Buffer.from("a"), { fin: false }), frame(0x2, Buffer.from("b"))], code: 1002 },
      { label: "a fragmented ping", bytes: () => [frame(0x9, Buffer.from("p"), { fin: false })], code: 1002 },
      { label: "a ping of 126 bytes", bytes: () => [frame(0x9, Buffer.alloc(126))], code: 1002 },
      { label: "text that is not UTF-8", bytes: () => [frame(0x1, Buffer.from([0xff, 0xfe, 0xc3]))], code: 1007 },
      { label: "text not UTF-8 across fragments", bytes: () => [frame(0x1, Buffer.from([0xe2, 0x82]), { fin: false }), frame(0x0, Buffer.from([0x41]))], code: 1007 },
      { label: "a close with code 999", bytes: () => [frame(0x8, closePayload(999))], code: 1002 },
      { label: "a close with a 1-byte body", bytes: () => [frame(0x8, Buffer.from([3]))], code: 1002 },
      { label: "a close with a reason that is not UTF-8", bytes: () => [frame(0x8, Buffer.concat([closePayload(1000), Buffer.from([0xff])]))], code: 1007 },
    ];
    for (const c of cases) {
      for (const kind of ["vnc", "serial"] as const) {
        figures.frameCasesTried++;
        const label = `${c.label} (${kind})`;
        const o = await open(kind);
        for (const b of c.bytes()) o.socket.write(b);
        const all = await untilClosed(o.socket, o.rest).catch((err: Error) => {
          failures.push(`${label}: ${err.message}`);
          o.socket.destroy();
          throw err;
        });
        const close = serverFrames(all).find((f) => f.opcode === 0x8);
        const code = close && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : null;
        if (code !== c.code) failures.push(`${label}: closed with ${code}, not ${c.code}`);
        assert.equal(code, c.code, label);
        figures.frameCasesClosedCleanly++;
      }
    }
    // Property: random byte soup after the handshake is either framed (and relayed) or ends the console with a protocol close; the web stays up.
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<"vnc" | "serial">("vnc", "serial"), fc.uint8Array({ minLength: 1, maxLength: 64 }), async (kind, soup) => {
        figures.frameCasesTried++;
        const o = await open(kind);
        o.socket.write(Buffer.from(soup));
        // The soup may be a whole frame or the start of one: a clean close of ours always ends the exchange.
        o.socket.end(frame(0x8, closePayload(1000)));
        const all = await untilClosed(o.socket, o.rest);
        const close = serverFrames(all).find((f) => f.opcode === 0x8);
        // A close frame when the server ended it; a connection it ended after ours otherwise.
        const clean = !close || [1000, 1002, 1007, 1009].includes(close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1000);
        if (!clean) failures.push(`byte soup ${Buffer.from(soup).toString("hex")} on ${kind}: close ${close?.payload.toString("hex")}`);
        else figures.frameCasesClosedCleanly++;
        return clean;
      }),
      { numRuns: 30, endOnFailure: true },
    );
    await waitFor("every console to be recorded as ended", async () => (await openSessions()) === 0, 15_000);
    await alive("the hostile frames");
    // The guest's console still works for its owner.
    const last = await open("serial");
    last.socket.end(frame(0x8, closePayload(1000)));
    await untilClosed(last.socket, last.rest);
  });

  test("forged, reused, expired, cross-guest, stolen and wrong-kind tickets are refused with a reason; none opens a console", { timeout: 90_000 }, async () => {
    const sessionsBefore = await db().consoleSession.count();
    let opened = 0;
    const attempt = async (label: string, kind: "vnc" | "serial", guestId: string, ticket: string, cookie: string | undefined, expect: number, reason?: RegExp) => {
      figures.ticketsTried++;
      const answer = await rawExchange(stack.port, upgradeRequest(wsPath(kind, guestId, ticket), { cookie }));
      if (answer.status === 101) {
        opened++;
        answer.socket.end(frame(0x8, closePayload(1000)));
        await untilClosed(answer.socket, answer.rest);
      } else answer.socket.destroy();
      if (answer.status !== expect) failures.push(`${label}: ${answer.status}, not ${expect}`);
      assert.equal(answer.status, expect, `${label}: ${answer.body}`);
      if (expect !== 101) {
        figures.ticketsRefused++;
        if (reason) assert.match((JSON.parse(answer.body) as { message: string }).message, reason, label);
      }
    };

    // Forged: anything that was never minted, in the ticket's own alphabet and length or not.
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<"vnc" | "serial">("vnc", "serial"),
        fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{43}$/), fc.string({ maxLength: 60 }), fc.constantFrom("", "null", "undefined", "%00", "A".repeat(43), "-".repeat(43))),
        async (kind, ticket) => {
          figures.ticketsTried++;
          const answer = await rawExchange(stack.port, upgradeRequest(wsPath(kind, A.guest, ticket), { cookie: cookies.alice }));
          answer.socket.destroy();
          const message = answer.status === 401 ? (JSON.parse(answer.body) as { message: string }).message : "";
          const ok = answer.status === 401 && /no such console ticket|missing or malformed/.test(message);
          if (ok) figures.ticketsRefused++;
          else failures.push(`forged ticket ${JSON.stringify(ticket)}: ${answer.status} ${answer.body}`);
          return ok;
        },
      ),
      { numRuns: 60, endOnFailure: true },
    );

    // Reused: a ticket from the openConsole action opens once.
    const opening = await must<{ status: string; path: string; ticket: string }>(cookies.alice, "openConsole", [A.guest, { kind: "serial" }]);
    assert.equal(opening.path, `/ws/serial/${A.guest}`);
    await attempt("a fresh ticket from openConsole", "serial", A.guest, opening.ticket, cookies.alice, 101);
    await attempt("the same ticket again", "serial", A.guest, opening.ticket, cookies.alice, 401, /used already/);
    // Reused at once: six connections race for one ticket; one wins.
    const raced = (await must<{ ticket: string }>(cookies.alice, "openConsole", [A.guest, { kind: "vnc" }])).ticket;
    const racers = await Promise.all(Array.from({ length: 6 }, () => rawExchange(stack.port, upgradeRequest(wsPath("vnc", A.guest, raced), { cookie: cookies.alice }))));
    figures.ticketsTried += racers.length;
    figures.ticketsRefused += racers.filter((r) => r.status === 401).length;
    assert.deepEqual(racers.map((r) => r.status).sort(), [101, 401, 401, 401, 401, 401], "one of six racing connections gets the console");
    for (const r of racers) {
      if (r.status === 101) {
        opened++;
        r.socket.end(frame(0x8, closePayload(1000)));
        await untilClosed(r.socket, r.rest);
      } else r.socket.destroy();
    }
    // Expired: minted as if a moment past its lifetime ago.
    const expired = await ticketFor(ids.alice, A.guest, "vnc", new Date(Date.now() - CONSOLE_TICKET_TTL_MS - 1000));
    await attempt("an expired ticket", "vnc", A.guest, expired, cookies.alice, 401, /expired/);
    // Cross-guest: mallory's ticket for her own guest on alice's guest, and alice's ticket on mallory's guest.
    await attempt("mallory's ticket (her guest) on alice's guest", "vnc", A.guest, await ticketFor(ids.mallory, M.guest, "vnc"), cookies.mallory, 401, /another guest/);
    await attempt("mallory's serial ticket (her guest) on alice's serial port", "serial", A.guest, await ticketFor(ids.mallory, M.guest, "serial"), cookies.mallory, 401, /another guest/);
    await attempt("alice's ticket on mallory's guest", "vnc", M.guest, await ticketFor(ids.alice, A.guest, "vnc"), cookies.alice, 401, /another guest/);
    // Stolen: alice's ticket with mallory's login, or with none.
    await attempt("alice's ticket with mallory's session", "vnc", A.guest, await ticketFor(ids.alice, A.guest, "vnc"), cookies.mallory, 403, /someone else/);
    await attempt("alice's ticket without a session", "serial", A.guest, await ticketFor(ids.alice, A.guest, "serial"), undefined, 401, /Log in/);
    // A ticket minted for mallory on alice's guest (what a broken openConsole would hand out) still meets the bridge's own check.
    await attempt("a ticket of mallory's for alice's guest", "vnc", A.guest, await ticketFor(ids.mallory, A.guest, "vnc"), cookies.mallory, 404, /does not exist, or you may not operate it/);
    // Wrong kind.
    await attempt("a screen ticket on the serial path", "serial", A.guest, await ticketFor(ids.alice, A.guest, "vnc"), cookies.alice, 401, /other console/);
    await attempt("a serial ticket on the screen path", "vnc", A.guest, await ticketFor(ids.alice, A.guest, "serial"), cookies.alice, 401, /other console/);
    // View-only links' tickets: only the screen, only its guest, only while the link works.
    await attempt("a view-only link's ticket on the serial path", "serial", A.guest, (await mintShareTicket(db(), A.share, A.guest)).ticket, undefined, 401, /other console/);
    await attempt("a view-only link's ticket on another guest", "vnc", M.guest, (await mintShareTicket(db(), A.share, A.guest)).ticket, undefined, 401, /another guest/);
    await attempt("a revoked link's ticket", "vnc", A.guest, (await mintShareTicket(db(), A.shareRevoked, A.guest)).ticket, undefined, 403, /revoked/);
    await attempt("a view-only link's ticket made for another guest", "vnc", M.guest, (await mintShareTicket(db(), A.share, M.guest)).ticket, undefined, 403, /another guest/);
    // Mallory asking for a ticket to alice's guest gets none.
    for (const kind of ["vnc", "serial"] as const) {
      const answer = await act(cookies.mallory, "openConsole", [A.guest, { kind }]);
      assert.deepEqual(answer.result, { ok: false, code: "not-found", error: "This guest does not exist, or you may not see it." });
    }
    assert.equal(await db().consoleTicket.count({ where: { guestId: A.guest, userId: ids.mallory, createdAt: { gt: new Date(began) } } }), 1, "the only ticket of mallory's for alice's guest is the one this test minted by hand");
    assert.equal(opened, 2, "only the two valid uses opened a console");
    assert.equal(await db().consoleSession.count(), sessionsBefore + opened);
    await waitFor("every console to be recorded as ended", async () => (await openSessions()) === 0, 15_000);
  });

  test("the event stream tells mallory of her own guests and tasks only", { timeout: 60_000 }, async () => {
    const follow = (cookie: string) => {
      let text = "";
      const req = http.get({ host: "127.0.0.1", port: stack.port, path: "/api/events", headers: { cookie }, agent: false }, (res) => {
        assert.equal(res.statusCode, 200);
        res.on("data", (c: Buffer) => (text += c.toString("utf8")));
      });
      req.on("error", () => {});
      return { text: () => text, stop: () => req.destroy() };
    };
    const hers = follow(cookies.alice);
    const theirs = follow(cookies.mallory);
    try {
      await waitFor("both streams to open", () => hers.text().includes("retry:") && theirs.text().includes("retry:"), 10_000, 20);
      // Alice's guest changes state and alice makes a disk (a task); then mallory's guest and a task of hers.
      await must(cookies.alice, "powerGuest", [A.guest, "pause"]);
      await must(cookies.alice, "powerGuest", [A.guest, "resume"]);
      await must(cookies.alice, "checkDisk", [A.disk]);
      await waitFor("alice to hear of her guest", () => hers.text().includes(A.guest), 15_000, 20);
      await must(cookies.mallory, "powerGuest", [M.guest, "start"]);
      await waitFor("mallory to hear of her guest", () => theirs.text().includes(M.guest), 15_000, 20);
      await must(cookies.mallory, "powerGuest", [M.guest, "force-off"]);
      await waitFor("mallory to hear her guest stopped", () => theirs.text().split(M.guest).length >= 3, 15_000, 20);
      figures.eventsSeenByMallory = theirs.text().split("\n\n").filter((e) => e.includes("data:")).length;
      const aliceThings = [A.guest, ...A.tasks, ...(await db().task.findMany({ where: { userId: ids.alice } })).map((t) => t.id), GUEST_NAME];
      const leaked = aliceThings.filter((s) => theirs.text().includes(s));
      if (leaked.length) failures.push(`the event stream told mallory of ${leaked.join(", ")}`);
      assert.deepEqual(leaked, [], "mallory's stream names nothing of alice's");
    } finally {
      hers.stop();
      theirs.stop();
    }
  });

  test("mallory's every route and action on alice's guest, disks, upload and tasks is refused, names nothing of alice's, and changes nothing", { timeout: 120_000 }, async () => {
    // Controls: alice herself is shown and may do what mallory tries.
    const page = await request("GET", `/guests/${A.guest}`, { cookie: cookies.alice });
    assert.equal(page.status, 200);
    assert.ok(page.text.includes(GUEST_NAME), "alice's page names her guest");
    const guestRow = await db().guest.findUniqueOrThrow({ where: { id: A.guest }, include: { nics: true, cdroms: { include: { iso: true } } } });
    const hardware = (memoryMiB: number) => ({
      machine: guestRow.machine,
      firmware: guestRow.firmware,
      vcpus: guestRow.vcpus,
      sockets: guestRow.sockets,
      threads: guestRow.threads,
      memoryMiB,
      bootOrder: guestRow.bootOrder.split(","),
      display: guestRow.display,
      serial: guestRow.serial,
      rtc: guestRow.rtc,
      description: "",
      tags: [],
      disks: [{ id: A.guestDisk, bus: "virtio", cache: "none", readOnly: false }],
      cdroms: guestRow.cdroms.map((c) => ({ iso: c.iso.name })),
      nics: guestRow.nics.map((n) => ({ mac: n.mac, model: n.model, isolated: n.isolated, forwards: [] })),
    });
    assert.deepEqual((await act(cookies.alice, "editHardware", [A.guest, hardware(guestRow.memoryMiB)])).result, { ok: true, data: null }, "the hardware mallory sends is valid for its owner");
    const aliceOffset = await request("GET", `/upload/default/${A.part}`, { cookie: cookies.alice });
    assert.deepEqual(JSON.parse(aliceOffset.text), { offset: A.partBytes, uploading: false }, "alice may resume her upload");

    const secrets = () => [
      "alice",
      GUEST_NAME,
      A.guest,
      A.guestDisk,
      A.guestDiskFile,
      A.disk,
      A.diskFile,
      A.part,
      A.share,
      SHARE_LABEL,
      ...A.volumes,
      ...A.tasks,
    ];
    const snapshot = async () => {
      const agent = stack.agent.client;
      const status = await agent.guest(A.guest);
      const disks = await db().disk.findMany({ where: { ownerId: ids.alice }, orderBy: { id: "asc" } });
      const files = Object.fromEntries(
        [A.guestDiskFile, A.diskFile, `${A.part}.part`].map((f) => {
          const s = fs.statSync(path.join(stack.agent.dataDir, "disks", f));
          return [f, { size: s.size, mtimeMs: s.mtimeMs, mode: s.mode }];
        }),
      );
      const images = await agent.images(disks.map((d) => ({ pool: d.pool, file: d.file, format: d.format as "qcow2" })));
      return JSON.parse(
        JSON.stringify(
          {
            guest: await db().guest.findUnique({ where: { id: A.guest }, include: { disks: true, cdroms: true, nics: true, shares: true } }),
            disks,
            isos: await db().isoImage.findMany({ orderBy: { id: "asc" } }),
            aliceTasks: await db().task.findMany({ where: { userId: ids.alice }, orderBy: { id: "asc" } }),
            aliceEvents: await db().event.count({ where: { userId: ids.alice } }),
            eventsOnHerGuest: await db().event.count({ where: { guestId: A.guest } }),
            tickets: await db().consoleTicket.count({ where: { guestId: A.guest } }),
            sessions: await db().consoleSession.count({ where: { guestId: A.guest } }),
            shares: await db().consoleShare.findMany({ where: { guestId: A.guest }, orderBy: { id: "asc" } }),
            agent: { state: status.state, pid: status.pid, argv: status.argv, spec: status.spec },
            files,
            images: images
              .filter((i) => disks.some((d) => d.file === i.file))
              .map((i) => ("snapshots" in i ? { file: i.file, format: i.format, virtualBytes: i.virtualBytes, snapshots: i.snapshots.map((s) => s.name) } : i)),
            part: await agent.uploadOffset({ pool: "default", file: A.part }),
            agentTasksOnHerFiles: (await agent.tasks()).filter((t) => t.targets.some((x) => [A.guestDiskFile, A.diskFile, A.part].some((f) => x.endsWith(`/${f}`)))).map((t) => t.id),
          },
          (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v),
        ),
      ) as unknown;
    };
    const before = await snapshot();

    type Attempt = { label: string; sent: string; run: () => Promise<{ refused: boolean; text: string; why: string }> };
    const asAction = (name: string, args: unknown[], at = "/"): Attempt => ({
      label: `${name}(${JSON.stringify(args).slice(0, 120)}) at ${at}`,
      sent: `${at} ${JSON.stringify(args)}`,
      run: async () => {
        const answer = await act(cookies.mallory, name, args, at);
        const r = answer.result;
        const refused = r !== null && !r.ok && ["not-found", "forbidden", "invalid-input", "conflict"].includes(r.code ?? "") && (r.error ?? "").length > 10;
        return { refused, text: answer.text, why: `${answer.status} ${JSON.stringify(r) ?? answer.text.slice(0, 200)}` };
      },
    });
    const asRequest = (method: string, target: string, body?: Buffer, headers: Record<string, string> = {}): Attempt => ({
      label: `${method} ${target.slice(0, 160)}${headers.rsc ? " (RSC)" : ""}`,
      sent: decodeURIComponentSafe(target),
      run: async () => {
        let answer = await request(method, target, { cookie: cookies.mallory, body, headers });
        // Next sends an RSC request without its cache-busting parameter to the same address with it.
        if (headers.rsc && answer.status === 307 && answer.location) {
          const next = new URL(answer.location, base());
          answer = await request(method, `${next.pathname}${next.search}`, { cookie: cookies.mallory, body, headers });
        }
        // A view-only link's page answers an unknown link with a page saying so (and nothing else).
        const shareRefused = target.startsWith("/share/") && answer.status === 200 && /data-testid="share-refused" data-reason="(unknown|malformed)"/.test(answer.text);
        // An RSC payload (a client-side navigation) carries a page's not-found as an error row instead of the status.
        const rscNotFound = Boolean(headers.rsc) && answer.status === 200 && answer.type.startsWith("text/x-component") && /^[0-9a-f]+:E\{"digest":"NEXT_HTTP_ERROR_FALLBACK;404"\}$/m.test(answer.text);
        return { refused: (answer.status >= 400 && answer.status < 500) || shareRefused || rscNotFound, text: answer.text, why: `${answer.status} ${answer.text.slice(0, 200)}` };
      },
    });

    const anyGuest = fc.oneof(
      { weight: 6, arbitrary: fc.constant(A.guest) },
      { weight: 2, arbitrary: fc.constantFrom(A.guest.toUpperCase(), ` ${A.guest}`, `${A.guest} `, `${A.guest}\u0000`, `${A.guest}/`, `../${A.guest}`, `${A.guest}/..`, A.guest.slice(0, -1), `${A.guest}%00`, `${A.guest}?`, `${A.guest}#`, encodeURIComponent(A.guest)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((s) => `x${s}`) },
    );
    const anyDisk = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(A.disk, A.guestDisk) }, { weight: 1, arbitrary: fc.constantFrom(` ${A.disk}`, A.disk.toUpperCase(), `${A.disk}\u0000`, `../${A.disk}`) });
    const anyTask = fc.constantFrom(...A.tasks, ...A.tasks.map((t) => `${t}%`), A.tasks[0]!.toUpperCase());
    const enc = (s: string) => encodeURIComponent(s);
    const PAGES = ["", "/edit", "/console", "/serial", "/definition", "/serial-log", "/serial-log?view=1", "/thumbnail?w=640", "/viewers", "/vnc-ca"];
    const rsc = { rsc: "1" };

    /** Every kind of attempt, one arbitrary each, on the given targets. */
    const armsOn = (guestTarget: fc.Arbitrary<string>, diskTarget: fc.Arbitrary<string>, taskTarget: fc.Arbitrary<string>): Array<fc.Arbitrary<Attempt>> => [
      // Guest actions, also posted to alice's guest's own page URLs.
      fc.tuple(guestTarget, fc.constantFrom(...POWER_ACTIONS), fc.constantFrom("/", `/guests/${A.guest}`, `/guests/${A.guest}/console`)).map(([g, op, at]) => asAction("powerGuest", [g, op], at)),
      fc.tuple(guestTarget, fc.boolean()).map(([g, withDisks]) => asAction("deleteGuest", [g, withDisks])),
      fc.tuple(guestTarget, fc.constantFrom("vnc", "serial"), fc.boolean()).map(([g, kind, viewOnly]) => asAction("openConsole", [g, { kind, viewOnly }])),
      fc.tuple(guestTarget, fc.constantFrom("full", "linked")).map(([g, mode]) => asAction("cloneGuest", [g, { name: "stolen-copy", mode }])),
      guestTarget.map((g) => asAction("editHardware", [g, hardware(512)])),
      guestTarget.map((g) => asAction("makeTemplate", [g])),
      guestTarget.map((g) => asAction("nativeViewerPassword", [g])),
      fc.tuple(guestTarget, fc.constantFrom("echo pwned", "reboot -f\n")).map(([g, text]) => asAction("pasteText", [g, text])),
      fc.tuple(guestTarget, fc.constantFrom("1h", "24h")).map(([g, d]) => asAction("createShareLink", [g, d, "mine now"])),
      guestTarget.map((g) => asAction("revokeShareLink", [g, A.share])),
      // Disk actions on alice's disks, and mallory's disk into alice's guest.
      fc.tuple(diskTarget, fc.constantFrom("qcow2", "raw")).map(([d, format]) => asAction("convertDisk", [d, { file: `stolen.${format}`, format }])),
      fc.tuple(diskTarget, fc.boolean()).map(([d, shrink]) => asAction("resizeDisk", [d, { size: shrink ? "1M" : "2G", shrink }])),
      fc.tuple(diskTarget, fc.constantFrom("create", "revert", "delete")).map(([d, op]) => asAction("snapshotDisk", [d, { op, name: "before" }])),
      diskTarget.map((d) => asAction("checkDisk", [d])),
      diskTarget.map((d) => asAction("attachDisk", [d, { guestId: M.guest, bus: "virtio" }])),
      guestTarget.map((g) => asAction("attachDisk", [M.disk, { guestId: g, bus: "virtio" }])),
      diskTarget.map((d) => asAction("detachDisk", [d])),
      diskTarget.map((d) => asAction("deleteDisk", [d])),
      taskTarget.map((t) => asAction("cancelTask", [t])),
      fc.constantFrom(A.part, A.diskFile, A.guestDiskFile).map((file) => asAction("removeUploadPart", [{ pool: "default", file }])),
      fc.constantFrom("demo.iso", "../demo.iso").map((name) => asAction("deleteIso", [name])),
      fc.constantFrom(A.diskFile, A.guestDiskFile, `${A.part}.part`).map((file) => asAction("importImage", [{ pool: "default", file }])),
      fc.stringMatching(/^[A-Za-z0-9_-]{43}$/).map((token) => asAction("openSharedConsole", [token])),
      // Pages and routes of alice's guest and disks, as HTML and as RSC payloads.
      fc.tuple(guestTarget, fc.constantFrom(...PAGES), fc.boolean()).map(([g, p, asRsc]) => asRequest("GET", `/guests/${enc(g)}${p}`, undefined, asRsc ? rsc : {})),
      fc.tuple(diskTarget, fc.boolean()).map(([d, asRsc]) => asRequest("GET", `/disks/${enc(d)}`, undefined, asRsc ? rsc : {})),
      fc.tuple(fc.constantFrom("POST", "PUT", "DELETE", "PATCH"), fc.constantFrom("/definition", "/serial-log", "/viewers", "/thumbnail")).map(([m, p]) => asRequest(m, `/guests/${A.guest}${p}`, Buffer.from("{}"))),
      fc.stringMatching(/^[A-Za-z0-9_-]{43}$/).map((token) => asRequest("GET", `/share/${token}`)),
      // Uploads onto alice's names: her disks, her interrupted upload (from its start, resumed, read, cancelled).
      fc.constantFrom(A.diskFile, A.guestDiskFile).map((file) => asRequest("PUT", `/upload/default/${file}?size=512`, Buffer.alloc(512))),
      fc.constant(asRequest("PUT", `/upload/default/${A.part}?size=${2 ** 20}&offset=${A.partBytes}`, Buffer.alloc(2 ** 20 - A.partBytes))),
      fc.constant(asRequest("PUT", `/upload/default/${A.part}?size=4096`, Buffer.alloc(4096))),
      fc.constantFrom(A.part, A.diskFile, A.guestDiskFile).map((file) => asRequest("GET", `/upload/default/${file}`)),
      fc.constantFrom(A.part, A.diskFile, A.guestDiskFile).map((file) => asRequest("DELETE", `/upload/default/${file}`)),
      fc.constant(asRequest("PUT", `/upload/isos/demo.iso?size=512`, Buffer.alloc(512))),
    ];

    const tried: string[] = [];
    const check = async (a: Attempt): Promise<boolean> => {
      figures.crossMemberRequests++;
      tried.push(a.label);
      const { refused, text, why } = await a.run();
      const leaked = secrets().filter((s) => text.includes(s) && !a.sent.includes(s));
      if (refused) figures.crossMemberRefused++;
      else failures.push(`mallory: ${a.label} was not refused: ${why}`);
      if (leaked.length) {
        figures.crossMemberLeaks++;
        failures.push(`mallory: ${a.label} answered with alice's ${leaked.join(", ")}`);
      }
      // Collected, not thrown: every attempt runs, and the assertion below lists each one that got through.
      return true;
    };
    // Every kind of attempt on alice's exact ids, each variant of it (up to 24 of the random ones), then random mixes with hostile ids.
    const exactArms = armsOn(fc.constant(A.guest), fc.constantFrom(A.disk, A.guestDisk), fc.constantFrom(...A.tasks));
    for (const arm of exactArms) {
      const variants = new Map(fc.sample(arm, { numRuns: 200, seed: 12 }).map((a) => [a.label, a]));
      for (const a of [...variants.values()].slice(0, 24)) await check(a);
    }
    await fc.assert(fc.asyncProperty(fc.oneof(...armsOn(anyGuest, anyDisk, anyTask)), check), { numRuns: 150 });

    // Lists and pages mallory may see show nothing of alice's.
    for (const target of ["/", "/disks", "/tasks", "/guests/new"]) {
      const answer = await request("GET", target, { cookie: cookies.mallory });
      figures.listPagesChecked++;
      assert.equal(answer.status, 200, target);
      const leaked = secrets().filter((s) => answer.text.includes(s));
      if (leaked.length) failures.push(`mallory's ${target} shows alice's ${leaked.join(", ")}`);
      assert.deepEqual(leaked, [], `mallory's ${target}`);
    }
    const aliceDisks = await request("GET", "/disks", { cookie: cookies.alice });
    assert.ok(aliceDisks.text.includes(A.diskFile) && aliceDisks.text.includes(A.part), "alice's own disks page lists her disk and interrupted upload");

    // Nothing of alice's changed: rows, files, snapshots, the running guest, her upload.
    assert.deepEqual(await snapshot(), before, "alice's objects changed");
    assert.equal(await db().event.count({ where: { userId: ids.mallory, guestId: A.guest } }), 0, "no event of mallory's on alice's guest");
    assert.equal(await db().task.count({ where: { userId: ids.mallory, target: { contains: "7k3" } } }), 0, "no task of mallory's on alice's files");
    assert.deepEqual(failures.filter((f) => f.startsWith("mallory")), [], `refused and silent (${tried.length} attempts)`);
  });

  test("hostile names in uploads, guests and disks get a clear 4xx; nothing is written outside the storage folder", { timeout: 120_000 }, async () => {
    const data = stack.agent.dataDir;
    const disksDir = path.join(data, "disks");
    const marker = path.join(path.dirname(data), `gh-pwned-${randomBytes(4).toString("hex")}`);
    /** Every path under the data folder (QEMU's run folder aside), and what is beside it. */
    const tree = () => {
      const all = new Set<string>();
      const walk = (dir: string) => {
        for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
          const p = path.join(dir, entry.name);
          if (p === path.join(data, "run")) continue;
          all.add(path.relative(data, p));
          if (entry.isDirectory()) walk(p);
        }
      };
      walk(data);
      for (const dir of [path.dirname(data), process.cwd(), "/tmp", "/"]) for (const name of fs.readdirSync(dir)) all.add(`${dir}::${name}`);
      return all;
    };
    const before = tree();
    const accepted = new Set<string>();

    const HOSTILE = [
      "..",
      ".",
      "...",
      "../etc/passwd",
      "../../../../tmp/x.raw",
      "/etc/passwd",
      "a/b.raw",
      "a\\..\\b.raw",
      "a\u0000.raw",
      "x.raw\u0000.iso",
      `$(touch ${marker}).raw`,
      `\`touch ${marker}\`.raw`,
      `a;touch ${marker}`,
      `a|touch ${marker}`,
      `a&&touch ${marker}`,
      "a\nb.raw",
      "a\r\nX-Evil: 1",
      "-rf.raw",
      "--help",
      ".hidden.raw",
      "x.raw.part",
      "~root.raw",
      "*.raw",
      "a b.raw",
      "'quoted'.raw",
      '"quoted".raw',
      "été.raw",
      "\u202ewar.exe.raw",
      "💣.raw",
      "ｆｕｌｌ.raw",
      "x".repeat(300),
      "%2e%2e",
      "%00",
      "",
    ];
    const refusedClearly = (status: number, text: string) => {
      if (status < 400 || status >= 500) return false;
      try {
        const json = JSON.parse(text) as { error?: string };
        return (json.error ?? "").length > 10;
      } catch {
        return false;
      }
    };
    const tryUpload = async (segment: string, name: string | null, mustRefuse: boolean) => {
      figures.namesTried++;
      const body = Buffer.alloc(512, 1);
      const answer = await request("PUT", `/upload/default/${segment}?size=512`, { cookie: cookies.mallory, body });
      if (answer.status === 201) {
        figures.namesAccepted++;
        accepted.add(name!);
        const here = name !== null && fs.existsSync(path.join(disksDir, name));
        if (mustRefuse || !here) failures.push(`upload as ${JSON.stringify(segment)} arrived (${here ? "in disks/" : "not where named"})`);
        assert.ok(!mustRefuse && here, `upload as ${JSON.stringify(segment)}: ${answer.text}`);
      } else {
        figures.namesRefused++;
        const clear = refusedClearly(answer.status, answer.text);
        if (!clear) failures.push(`upload as ${JSON.stringify(segment)}: ${answer.status} ${answer.text.slice(0, 200)}`);
        assert.ok(clear, `upload as ${JSON.stringify(segment)}: a 4xx saying why (${answer.status} ${answer.text.slice(0, 200)})`);
      }
    };
    for (const name of HOSTILE) await tryUpload(encodeURIComponent(name), name, true);
    // As written on the wire: literal dots and slashes, doubly encoded, other folders.
    for (const raw of ["..%2f..%2fetc%2fpasswd", "%252e%252e%252fx.raw", "..", "%2e%2e%2f%2e%2e%2fx.raw", "a%2fb.raw", "x.raw%00"]) await tryUpload(raw, null, true);
    for (const target of ["/upload/..%2f..%2ftmp/x.raw", "/upload/%2e%2e/x.raw", "/upload/default%00/x.raw", "/upload/DEFAULT/x.raw", "/upload/nosuchfolder/x.raw", "/upload/default/../isos/x.iso", "/upload/default/a/b.raw", "/upload//x.raw", "/upload/isos/..%2fx.iso"]) {
      figures.namesTried++;
      const answer = await request("PUT", `${target}?size=512`, { cookie: cookies.mallory, body: Buffer.alloc(512) });
      figures.namesRefused++;
      if (!refusedClearly(answer.status, answer.text)) failures.push(`PUT ${target}: ${answer.status} ${answer.text.slice(0, 200)}`);
      assert.ok(refusedClearly(answer.status, answer.text), `PUT ${target}: ${answer.status} ${answer.text.slice(0, 200)}`);
    }
    // Bytes no client library would send in a request line: Node's parser refuses them, the server goes on.
    for (const bad of [`/upload/default/a\0b.raw`, `/upload/default/a b.raw`, `/upload/default/a\rb.raw`, `/upload/default/\x7f.raw`]) {
      figures.namesTried++;
      const answer = await rawExchange(stack.port, Buffer.from(`PUT ${bad}?size=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookies.mallory}\r\nOrigin: ${base()}\r\nContent-Length: 1\r\n\r\nx`, "latin1"));
      answer.socket.destroy();
      figures.namesRefused++;
      assert.equal(answer.status, 400, `raw ${JSON.stringify(bad)}: ${answer.head}`);
      await alive(`a raw ${JSON.stringify(bad)}`);
    }
    // Random names: refused with a reason, or arriving under exactly that name in the storage folder.
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary", minLength: 1, maxLength: 24 }), async (name) => {
        await tryUpload(encodeURIComponent(name), name, false);
        return true;
      }),
      { numRuns: 40 },
    );

    // Guest names, through every action that names a guest.
    const form = (name: string) => {
      const fd = new FormData();
      for (const [k, v] of Object.entries({ name, vcpus: "1", memoryMiB: "128", diskGiB: "0", diskBus: "virtio", iso: "demo.iso", network: "none", boot: "cdrom" })) fd.set(k, v);
      return fd;
    };
    const definition = (name: string) =>
      JSON.stringify({ guesthouse: 1, name, machine: "q35", firmware: "bios", vcpus: 1, sockets: 1, threads: 1, memoryMiB: 128, bootOrder: ["cdrom"], display: "std", serial: true, rtc: "utc", description: "", tags: [], disks: [], cdroms: [], nics: [] });
    /** A refusal that says which name is wrong and why. */
    const refusedAction = async (label: string, name: string, args: unknown[], names: RegExp) => {
      figures.namesTried++;
      const answer = await act(cookies.mallory, label, args);
      const r = answer.result;
      const ok = r !== null && !r.ok && r.code === "invalid-input" && names.test(r.error ?? "");
      if (ok) figures.namesRefused++;
      else failures.push(`${label} named ${JSON.stringify(name)}: ${answer.status} ${JSON.stringify(r) ?? answer.text.slice(0, 200)}`);
      assert.ok(ok, `${label} named ${JSON.stringify(name)}: ${JSON.stringify(r) ?? answer.text.slice(0, 200)}`);
    };
    // Controls: the same calls with a plain name succeed, so the refusals below are the names'.
    assert.ok((await act(cookies.mallory, "createGuest", [form("plain-guest")])).result?.ok, "createGuest with a plain name");
    assert.ok((await act(cookies.mallory, "importGuest", [definition("plain-import")])).result?.ok, "importGuest with a plain name");
    assert.ok((await act(cookies.mallory, "snapshotDisk", [M.disk, { op: "create", name: "plain-snap" }])).result?.ok, "snapshotDisk with a plain name");
    const guestsBefore = await db().guest.count();
    // "x.raw.part" is hostile as a file name only (an upload's part); as a guest's or a snapshot's name it is a plain one.
    const notFileOnly = HOSTILE.filter((n) => n !== "x.raw.part");
    for (const name of notFileOnly) {
      await refusedAction("createGuest", name, [form(name)], /name: A guest name must be/);
      await refusedAction("importGuest", name, [definition(name)], /name: A guest name must be/);
      await refusedAction("cloneGuest", name, [M.guest, { name, mode: "full" }], /name: A guest name must be/);
    }
    for (const name of HOSTILE) {
      await refusedAction("createDisk", name, [{ pool: "default", file: name, format: "qcow2", size: "1M", encrypt: false, passphrase: "" }], /file: An image name (must be|cannot end)/);
      await refusedAction("convertDisk", name, [M.disk, { file: name, format: "raw" }], /file: An image name (must be|cannot end)/);
    }
    for (const name of notFileOnly) await refusedAction("snapshotDisk", name, [M.disk, { op: "create", name }], /name: A snapshot name is/);
    for (const pool of ["..", "../../tmp", "/tmp", "default/..", "DEFAULT", "default\u0000", ""]) {
      await refusedAction("createDisk", pool, [{ pool, file: "fine.qcow2", format: "qcow2", size: "1M", encrypt: false, passphrase: "" }], /pool: A storage folder's name is/);
    }
    assert.equal(await db().guest.count(), guestsBefore, "no guest was made under a hostile name");

    // Nothing outside the storage folder; in it, only the uploads that arrived under their own names.
    const afterwards = tree();
    const added = [...afterwards].filter((p) => !before.has(p)).filter((p) => !(p.startsWith("disks/") && accepted.has(p.slice("disks/".length))));
    // Whatever else appeared must be the runtime's own (a guest's files, tsx's cache), named by no hostile input.
    const hostileAdded = added.filter((p) => /pwned|passwd|\.\.|evil|\$\(|`|;|\||💣|\u202e/.test(p) || HOSTILE.some((h) => h.length > 2 && p.endsWith(`::${h}`)));
    const removed = [...before].filter((p) => !afterwards.has(p) && !p.startsWith("guests/") && !p.includes("::"));
    if (hostileAdded.length) failures.push(`files named by hostile input: ${hostileAdded.join(", ")}`);
    assert.deepEqual(hostileAdded, [], "files named by hostile input");
    assert.deepEqual(added.filter((p) => !p.includes("::")), [], "new files in the data folder besides the accepted uploads");
    assert.deepEqual(removed, [], "files removed from the data folder");
    assert.equal(fs.existsSync(marker), false, "a shell ran a hostile name");
    await alive("the hostile names");
  });

  test("the web logged no uncaught error and no listener leak while under attack", () => {
    const bad = stack.output().split("\n").filter((l) => /uncaught|unhandled|MaxListenersExceeded|FATAL|heap out of memory/i.test(l));
    if (bad.length) failures.push(...bad.map((l) => `web log: ${l}`));
    assert.deepEqual(bad, []);
  });
});

function decodeURIComponentSafe(s: string): string {
  try {
    return `${s} ${decodeURIComponent(s)}`;
  } catch {
    return s;
  }
}
