/**
 * The console bridge against a fake host agent on a unix socket and a real SQLite
 * database: the password comes first as text, every byte the guest sent before it
 * closed arrives before the websocket closes, a view-only session's input never
 * reaches the guest, a share session ends when its link is revoked, the serial path
 * relays both ways, and every session is recorded.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { createSession, deleteSession, SESSION_COOKIE } from "../../server/auth/sessions";
import { createConsoleBridge, CLOSE_CODES } from "../../server/console/bridge";
import { createShare, revokeShare } from "../../server/console/shares";
import { mintShareTicket, mintTicket } from "../../server/console/tickets";
import { AGENT_PROTOCOL_VERSION, AGENT_ROUTES } from "../../server/agent-protocol";
import { AGENT_VNC_PASSWORD_HEADER } from "../../server/domain/types";
import { waitFor, within } from "../helpers/agent";
import { createTestDb, seedBasics, type TestDb } from "../helpers/db";

/** What the fake agent does with the next stream it opens. */
type Script = (socket: net.Socket) => void;

describe("console bridge (fake agent, real SQLite)", () => {
  let t: TestDb;
  let basics: Awaited<ReturnType<typeof seedBasics>>;
  let dir: string;
  let agent: http.Server;
  let web: http.Server;
  let bridge: ReturnType<typeof createConsoleBridge>;
  let port = 0;
  let cookie = "";
  const logs: string[] = [];
  const scripts: Script[] = [];
  const opened: string[] = [];
  const streams: net.Socket[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-bridge-"));
    const socketPath = path.join(dir, "agent.sock");
    // The fake agent speaks this web's protocol version (the client asks it first), and has consoles.
    agent = http.createServer((req, res) => {
      if (req.url === AGENT_ROUTES.version.path) return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ protocol: AGENT_PROTOCOL_VERSION }));
      res.writeHead(404).end();
    });
    agent.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
      const kind = /\/(vnc|serial)$/.exec(req.url ?? "")?.[1] ?? "?";
      opened.push(kind);
      streams.push(socket);
      const headers = [`HTTP/1.1 101 Switching Protocols`, `Connection: Upgrade`, `Upgrade: ${req.headers.upgrade}`];
      if (kind === "vnc") headers.push(`${AGENT_VNC_PASSWORD_HEADER}: s3cret-1`);
      socket.write(`${headers.join("\r\n")}\r\n\r\n`);
      (scripts.shift() ?? ((s) => s.end()))(socket);
    });
    await new Promise<void>((r) => agent.listen(socketPath, r));

    t = await createTestDb();
    basics = await seedBasics(t.db, `unix:${socketPath}`);
    const session = await createSession(t.db, basics.user.id);
    cookie = `${SESSION_COOKIE}=${session.secret}`;
    bridge = createConsoleBridge({ db: t.db, log: (l) => logs.push(l), touchMs: 200 });
    web = http.createServer((_req, res) => res.writeHead(404).end());
    web.on("upgrade", (req, socket, head) => {
      if (!bridge.onUpgrade(req, socket, head)) socket.destroy();
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    port = (web.address() as net.AddressInfo).port;
  });
  after(async () => {
    bridge.close();
    for (const s of streams) s.destroy();
    await new Promise((r) => web.close(r));
    // Upgraded sockets leave the server's count only when it notices; do not wait on it.
    agent.close();
    await t.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const connect = (kindPath: string, ticket: string, headers: Record<string, string> = { cookie }) =>
    new WebSocket(`ws://127.0.0.1:${port}/ws/${kindPath}/${basics.guest.id}?ticket=${ticket}`, {
      headers: { origin: `http://127.0.0.1:${port}`, ...headers },
    });

  /** Everything a websocket receives until it closes, and how it closed. */
  const collect = (ws: WebSocket) =>
    new Promise<{ messages: Array<string | Buffer>; code: number; reason: string }>((resolve, reject) => {
      const messages: Array<string | Buffer> = [];
      ws.on("message", (data, isBinary) => messages.push(isBinary ? (data as Buffer) : data.toString()));
      ws.once("close", (code, reason) => resolve({ messages, code, reason: reason.toString() }));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
      ws.once("error", reject);
    });

  test("the password comes first as text; every byte the guest sent before closing arrives before the close", async () => {
    // A server's last words (a refusal) right before it closes, after a lot of screen data.
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const lastWords = Buffer.from("\x00\x00\x00\x01\x00\x00\x00\x1eToo many security failures ::");
    scripts.push((socket) => {
      socket.write("RFB 003.008\n");
      socket.write(body);
      socket.end(lastWords);
    });
    const { ticket } = await mintTicket(t.db, basics.user.id, basics.guest.id);
    const { messages } = await collect(connect("console", ticket));
    assert.equal(typeof messages[0], "string");
    assert.deepEqual(JSON.parse(messages[0] as string), { password: "s3cret-1" });
    assert.ok(messages.slice(1).every((m) => Buffer.isBuffer(m)), "only the first message is text");
    const received = Buffer.concat(messages.slice(1) as Buffer[]);
    assert.equal(received.length, 12 + body.length + lastWords.length);
    assert.ok(received.equals(Buffer.concat([Buffer.from("RFB 003.008\n"), body, lastWords])), "the stream arrived whole and in order");
  });

  test("a view-only session: pictures are asked for, key and pointer events never reach the guest", async () => {
    const got: Buffer[] = [];
    scripts.push((socket) => {
      socket.write("RFB 003.008\n");
      socket.on("data", (c: Buffer) => got.push(c));
    });
    const { ticket } = await mintTicket(t.db, basics.user.id, basics.guest.id, new Date(), { viewOnly: true });
    const ws = connect("console", ticket);
    const done = collect(ws);
    await within("the websocket to open", new Promise((r) => ws.once("open", r)));
    const handshake = Buffer.concat([Buffer.from("RFB 003.008\n"), Buffer.from([2]), Buffer.alloc(16, 7), Buffer.from([0])]);
    const key = Buffer.from([4, 1, 0, 0, 0, 0, 0, 0x61]);
    const pointer = Buffer.from([5, 1, 0, 10, 0, 10]);
    const update = Buffer.from([3, 1, 0, 0, 0, 0, 4, 0, 3, 0]);
    // Split oddly across websocket messages, as a hostile client might.
    const stream = Buffer.concat([handshake, key, update, pointer, update]);
    const cuts = [0, 5, 13, 30, 31, 33, stream.length];
    for (let i = 1; i < cuts.length; i++) ws.send(stream.subarray(cuts[i - 1], cuts[i]));
    const expected = Buffer.concat([handshake.subarray(0, 29), Buffer.from([1]), update, update]);
    await waitFor("the guest to get the allowed part", () => Buffer.concat(got).length >= expected.length, 5000, 20);
    assert.ok(Buffer.concat(got).equals(expected), "only the handshake (shared) and the update requests passed");
    // Something the filter cannot frame ends the session, with a policy close.
    ws.send(Buffer.from([99]));
    const { code } = await within("the websocket to close", done);
    assert.equal(code, CLOSE_CODES.protocol);
    const row = await waitFor("the session's end to be recorded", () =>
      t.db.consoleSession.findFirst({ where: { viewOnly: true, userId: basics.user.id, endedAt: { not: null } } }),
    );
    assert.match(row.endReason ?? "", /may not/);
  });

  test("a view-only link's session needs no login and ends within moments of the link being revoked", async () => {
    scripts.push((socket) => socket.write("RFB 003.008\n"));
    const share = await createShare(t.db, { guestId: basics.guest.id, createdById: basics.user.id, duration: "1h", label: "call" });
    const { ticket } = await mintShareTicket(t.db, share.id, basics.guest.id);
    const ws = connect("console", ticket, {});
    const done = collect(ws);
    await within("the websocket to open", new Promise((r) => ws.once("open", r)));
    await waitFor("the share session to be recorded", () => t.db.consoleSession.findFirst({ where: { shareId: share.id, endedAt: null } }));
    assert.equal(await revokeShare(t.db, basics.guest.id, share.id), true);
    const { code, reason } = await within("the websocket to close", done);
    assert.equal(code, CLOSE_CODES.shareEnded);
    assert.match(reason, /revoked/);
    const row = await waitFor("the end", () => t.db.consoleSession.findFirst({ where: { shareId: share.id, endedAt: { not: null } } }));
    assert.equal(row.viewOnly, true);
    assert.equal(row.userId, null);
    // And a new ticket of the revoked link is refused before the guest is asked.
    const before = opened.length;
    const again = await mintShareTicket(t.db, share.id, basics.guest.id);
    await assert.rejects(collect(connect("console", again.ticket, {})), /refused: 403/);
    assert.equal(opened.length, before, "no guest stream was opened for it");
  });

  test("a logged-in viewer's console ends within moments of their logout, their account being disabled, and when the guest stops being theirs", async () => {
    for (const ending of ["logout", "disabled", "guest given away"] as const) {
      scripts.push((socket) => socket.write("RFB 003.008\n"));
      const own = await createSession(t.db, basics.user.id);
      const { ticket } = await mintTicket(t.db, basics.user.id, basics.guest.id, new Date(), { kind: "vnc" });
      const ws = connect("console", ticket, { cookie: `${SESSION_COOKIE}=${own.secret}` });
      const done = collect(ws);
      await within("the websocket to open", new Promise((r) => ws.once("open", r)));
      await waitFor("the session to be recorded", () => t.db.consoleSession.findFirst({ where: { userId: basics.user.id, endedAt: null } }));
      await new Promise((r) => setTimeout(r, 500)); // a few checks pass while the login holds
      assert.equal(ws.readyState, WebSocket.OPEN, `still open before the ${ending}`);
      const other = ending === "guest given away" ? await t.db.user.create({ data: { username: "new-owner", passwordHash: "x", role: "member", teamId: basics.team.id, memberships: { create: { teamId: basics.team.id, role: "member" } } } }) : null;
      if (other) await t.db.guest.update({ where: { id: basics.guest.id }, data: { ownerId: other.id } });
      else if (ending === "disabled") await t.db.user.update({ where: { id: basics.user.id }, data: { disabledAt: new Date() } });
      else await deleteSession(t.db, own.secret);
      const { code, reason } = await within("the websocket to close", done);
      assert.equal(code, CLOSE_CODES.accessEnded, ending);
      assert.match(reason, /log in again/);
      if (other) {
        await t.db.guest.update({ where: { id: basics.guest.id }, data: { ownerId: basics.user.id } });
        await t.db.user.delete({ where: { id: other.id } });
      }
      if (ending === "disabled") await t.db.user.update({ where: { id: basics.user.id }, data: { disabledAt: null } });
    }
  });

  test("the serial path relays both ways, with no password message", async () => {
    const got: Buffer[] = [];
    scripts.push((socket) => {
      socket.write("login: ");
      socket.on("data", (c: Buffer) => {
        got.push(c);
        if (Buffer.concat(got).includes("\r")) socket.end("\r\nwelcome\r\n");
      });
    });
    const { ticket } = await mintTicket(t.db, basics.user.id, basics.guest.id, new Date(), { kind: "serial" });
    const ws = connect("serial", ticket);
    const done = collect(ws);
    await within("the websocket to open", new Promise((r) => ws.once("open", r)));
    ws.send("root\r");
    const { messages } = await within("the websocket to close", done);
    assert.ok(messages.every((m) => Buffer.isBuffer(m)));
    assert.equal(Buffer.concat(messages as Buffer[]).toString(), "login: \r\nwelcome\r\n");
    assert.equal(Buffer.concat(got).toString(), "root\r");
    assert.equal(opened[opened.length - 1], "serial");
  });

  test("refusals: wrong kind, no session, foreign origin, unknown path", async () => {
    const refused = async (ws: WebSocket) => {
      try {
        await collect(ws);
        return 101;
      } catch (err) {
        return Number(/refused: (\d+)/.exec(String(err))?.[1] ?? 0);
      }
    };
    const before = opened.length;
    const vnc = await mintTicket(t.db, basics.user.id, basics.guest.id);
    assert.equal(await refused(connect("serial", vnc.ticket)), 401, "a screen ticket on the serial path");
    const noLogin = await mintTicket(t.db, basics.user.id, basics.guest.id);
    assert.equal(await refused(connect("console", noLogin.ticket, {})), 401);
    const foreign = await mintTicket(t.db, basics.user.id, basics.guest.id);
    assert.equal(await refused(connect("console", foreign.ticket, { cookie, origin: "http://evil.example" })), 403);
    assert.equal(await refused(new WebSocket(`ws://127.0.0.1:${port}/ws/console/x?ticket=a`, { headers: { origin: `http://127.0.0.1:${port}` } })), 404);
    assert.equal(opened.length, before, "no refused request opened a guest stream");
  });

  test("every session that opened is in the record, with its start and end", async () => {
    await waitFor("all sessions to end", async () => (await t.db.consoleSession.count({ where: { endedAt: null } })) === 0);
    const rows = await t.db.consoleSession.findMany({ orderBy: { startedAt: "asc" } });
    assert.deepEqual(
      rows.map((r) => [r.kind, r.viewOnly, r.userId ? "user" : "share"]),
      [
        ["vnc", false, "user"],
        ["vnc", true, "user"],
        ["vnc", true, "share"],
        ["vnc", false, "user"], // ended by the logout
        ["vnc", false, "user"], // ended when the account was disabled
        ["vnc", false, "user"], // ended when the guest was given away
        ["serial", false, "user"],
      ],
    );
    for (const r of rows) assert.ok(r.endedAt && r.endedAt >= r.startedAt);
    assert.match(rows[0]!.endReason ?? "", /guest's console closed/);
    assert.match(rows[3]!.endReason ?? "", /Your login ended/);
    assert.match(rows[4]!.endReason ?? "", /Your login ended/);
  });
});
