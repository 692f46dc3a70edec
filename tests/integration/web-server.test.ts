/**
 * The web server's own limits, against the real server: a request body that trickles in
 * is cut off at the configured limit (uploads aside), and a web started on a port that is
 * taken ends at once, saying so, instead of running without listening.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { after, before, describe, test } from "node:test";
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
