/**
 * The web server's own limits, against the real server: a request body that trickles in
 * is cut off at the configured limit (uploads aside); pages carry a Content-Security-Policy
 * whose nonce is on every script; over TLS only the __Host- session cookie counts; and a
 * web started on a port that is taken ends at once, saying so.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { createSession, SESSION_COOKIE, TLS_SESSION_COOKIE } from "../../server/auth/sessions";
import { within } from "../helpers/agent";
import { startTestStack, type TestStack } from "../helpers/web";

describe("web server limits", () => {
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack({ webEnv: { GUESTHOUSE_REQUEST_SECONDS: "2" } });
  });
  after(async () => {
    await stack?.cleanup();
  });

  test("a request body that trickles in is cut off at the limit (2 s here), not held for ever", async () => {
    const socket = net.createConnection({ host: "127.0.0.1", port: stack.port });
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const started = Date.now();
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => {});
    socket.resume(); // whatever the server answers is read, so its closing is seen
    // A login form announced at 1 KiB, of which one byte comes.
    socket.write(`POST /login HTTP/1.1\r\nHost: 127.0.0.1:${stack.port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1024\r\n\r\nu`);
    await within("the server to close the connection", closed, 15_000);
    const took = Date.now() - started;
    assert.ok(took >= 1_900 && took < 10_000, `closed after ${took} ms`);
  });

  test("headers that never end are cut off at the limit too", async () => {
    const socket = net.createConnection({ host: "127.0.0.1", port: stack.port });
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => {});
    socket.resume(); // whatever the server answers is read, so its closing is seen
    socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${stack.port}\r\nX-Slow: `);
    await within("the server to close the connection", closed, 15_000);
  });

  test("every page has a Content-Security-Policy with a fresh nonce, and each of Next's scripts carries it", async () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const answer = await fetch(`${stack.baseUrl}/login`);
      const policy = answer.headers.get("content-security-policy") ?? "";
      const nonce = /'nonce-([A-Za-z0-9+/=]+)'/.exec(policy)?.[1];
      assert.ok(nonce, policy);
      assert.match(policy, /script-src 'self' 'nonce-[^']+' 'strict-dynamic'/);
      assert.match(policy, /frame-ancestors 'none'/);
      nonces.add(nonce);
      const html = await answer.text();
      const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
      assert.ok(scripts.length > 0);
      for (const tag of scripts) assert.ok(tag.includes(`nonce="${nonce}"`), `a script without this response's nonce: ${tag}`);
    }
    assert.equal(nonces.size, 2, "a new nonce each time");
  });

  test("over TLS (as the proxy says) only the __Host- session cookie counts; a plain one is ignored", async () => {
    const db = stack.database.db;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const { secret } = await createSession(db, admin.id);
    const ask = (cookie: string, tls: boolean) =>
      fetch(`${stack.baseUrl}/upload/default/nothing.raw`, { headers: { cookie, ...(tls ? { "x-forwarded-proto": "https" } : {}) } }).then((r) => r.status);
    assert.equal(await ask(`${SESSION_COOKIE}=${secret}`, false), 200, "plain HTTP: the plain cookie");
    assert.equal(await ask(`${SESSION_COOKIE}=${secret}`, true), 401, "over TLS a plain cookie (which another site could have set) is no session");
    assert.equal(await ask(`${TLS_SESSION_COOKIE}=${secret}`, true), 200, "over TLS: the __Host- cookie");
    assert.equal(await ask(`${TLS_SESSION_COOKIE}=${secret}`, false), 401, "and only over TLS");
  });

  test("a second web on the same port ends at once with why, instead of running without listening", async () => {
    const second = spawn(process.execPath, ["--import", "tsx", "server/web/main.ts"], { env: stack.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    second.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    second.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    const code = await within("the second web to end", new Promise<number | null>((resolve) => second.once("exit", (c) => resolve(c))), 60_000);
    assert.equal(code, 1, out);
    assert.match(out, new RegExp(`web: cannot listen: 127\\.0\\.0\\.1:${stack.port} is taken by another program\\. Stop it, or set GUESTHOUSE_PORT to a free port\\.`));
    // The first one is still there.
    const answer = await fetch(`${stack.baseUrl}/login`);
    assert.equal(answer.status, 200);
  });
});
