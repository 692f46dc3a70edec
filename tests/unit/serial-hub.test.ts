/**
 * The shared serial port and the serial log, against a fake QEMU chardev socket (a unix
 * server that, like QEMU's, serves one client at a time) and in-memory viewers, including
 * one that never reads.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Duplex } from "node:stream";
import { after, before, describe, test } from "node:test";
import { MAX_BEHIND_BYTES, readSerialLog, replayOf, REPLAY_BYTES, rotateSerialLog, SerialPorts } from "../../server/agent/serial";
import { GuesthouseError } from "../../server/domain/errors";
import { waitFor } from "../helpers/agent";

/** An in-memory viewer: what it was sent, what it types, and (stuck) a viewer that never drains. */
function viewer(opts: { stuck?: boolean } = {}) {
  let received = "";
  let closed = false;
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, callback) {
      received += chunk.toString("latin1");
      if (!opts.stuck) callback(); // a stuck viewer never finishes a write: its buffer grows
    },
    final(callback) {
      callback();
    },
  });
  stream.on("close", () => (closed = true));
  return {
    stream,
    type: (text: string) => stream.push(Buffer.from(text, "latin1")),
    received: () => received,
    closed: () => closed,
  };
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

const until = (what: string, check: () => boolean, timeoutMs = 3000) => waitFor(what, check, timeoutMs, 5);

describe("SerialPorts", () => {
  let dir: string;
  let socketPath: string;
  let server: net.Server;
  /** The fake guest's side: every connection it accepted, in order. */
  const connections: Array<{ socket: net.Socket; received: string; ended: boolean }> = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-serial-"));
    socketPath = path.join(dir, "serial.sock");
    server = net.createServer((socket) => {
      const conn = { socket, received: "", ended: false };
      connections.push(conn);
      socket.on("data", (c: Buffer) => (conn.received += c.toString("latin1")));
      socket.on("end", () => {
        conn.ended = true;
        socket.end();
      });
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });
  after(async () => {
    // A failed test may leave a port open; the server only closes once every connection is gone.
    for (const c of connections) c.socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const current = () => connections.at(-1)!;

  test("one connection for all viewers: the guest's output reaches each, each one's input reaches the guest", async () => {
    const ports = new SerialPorts();
    const [a, b] = [viewer(), viewer()];
    const before = connections.length;
    (await ports.open("g1", socketPath)).attach(a.stream, Buffer.alloc(0));
    (await ports.open("g1", socketPath)).attach(b.stream, Buffer.from("early "));
    await until("the connection", () => connections.length === before + 1);
    await tick(50); // a second connection, if any, would have arrived by now
    assert.equal(connections.length, before + 1, "one connection to the port");

    current().socket.write("login: ");
    await until("both viewers to see the output", () => a.received() === "login: " && b.received() === "login: ");
    a.type("root\n");
    b.type("ls\n");
    await until("the guest to get both viewers' input", () => current().received === "early root\nls\n");

    // The port is closed after the last viewer leaves, not before.
    a.stream.destroy();
    await tick(50);
    assert.equal(current().ended, false);
    current().socket.write("still here");
    await until("the remaining viewer to still get output", () => b.received().endsWith("still here"));
    b.stream.destroy();
    await until("the port to be closed", () => current().ended);
  });

  test("a viewer that falls too far behind is dropped; the others keep going", async () => {
    const ports = new SerialPorts();
    const [fast, stuck] = [viewer(), viewer({ stuck: true })];
    (await ports.open("g2", socketPath)).attach(fast.stream, Buffer.alloc(0));
    (await ports.open("g2", socketPath)).attach(stuck.stream, Buffer.alloc(0));
    const chunk = "x".repeat(64 * 1024);
    const total = MAX_BEHIND_BYTES * 2;
    for (let sent = 0; sent < total; sent += chunk.length) current().socket.write(chunk);
    await until("the fast viewer to get everything", () => fast.received().length === total);
    assert.equal(stuck.closed(), true, "the stuck viewer was disconnected");
    assert.equal(fast.closed(), false);
    fast.stream.destroy();
    await until("the port to be closed", () => current().ended);
  });

  test("when the guest's side closes (QEMU exits), every viewer's stream ends", async () => {
    const ports = new SerialPorts();
    const a = viewer();
    (await ports.open("g3", socketPath)).attach(a.stream, Buffer.alloc(0));
    await tick();
    current().socket.end("bye");
    await until("the viewer to end", () => a.closed());
    assert.equal(a.received(), "bye", "what the guest sent before closing arrives first");
  });

  test("a viewer that went away before it was attached lets go of the port", async () => {
    const ports = new SerialPorts();
    const lease = await ports.open("g4", socketPath);
    await tick();
    lease.cancel();
    await until("the port to be closed", () => current().ended);
  });

  test("viewers joining see the latest output first: the log's end when the port was quiet, then what it printed, from a line start", async () => {
    const log = path.join(dir, "g6-serial.log");
    // More than the replay holds: the first line kept is cut off, so it is left out.
    fs.writeFileSync(log, `${"x".repeat(REPLAY_BYTES + 500)}\nboot done\nlogin: `);
    const ports = new SerialPorts();
    const a = viewer();
    const before = connections.length;
    (await ports.open("g6", socketPath, log)).attach(a.stream, Buffer.alloc(0));
    assert.equal(a.received(), "boot done\nlogin: ", "the first viewer sees the prompt the guest printed before anyone watched");
    await until("the connection", () => connections.length === before + 1);
    current().socket.write("root\n");
    await until("the live output", () => a.received().endsWith("root\n"));
    const b = viewer();
    (await ports.open("g6", socketPath, log)).attach(b.stream, Buffer.alloc(0));
    assert.equal(b.received(), "boot done\nlogin: root\n", "a later viewer sees the same screen, live output included, once");
    current().socket.write("$ ");
    await until("both to get what follows", () => a.received().endsWith("root\n$ ") && b.received().endsWith("root\n$ "));
    a.stream.destroy();
    b.stream.destroy();
    await until("the port to be closed", () => current().ended);

    // A short log is replayed whole; no log, nothing.
    fs.writeFileSync(log, "short\n");
    for (const [id, file, expected] of [["g7", log, "short\n"], ["g8", path.join(dir, "no-such.log"), ""]] as const) {
      const v = viewer();
      const count = connections.length;
      (await ports.open(id, socketPath, file)).attach(v.stream, Buffer.alloc(0));
      assert.equal(v.received(), expected, id);
      await until("the connection", () => connections.length === count + 1);
      v.stream.destroy();
      await until("the port to be closed", () => current().ended);
    }
  });

  test("replayOf: whole when nothing was cut, else from the first line start; nothing when no line starts", () => {
    assert.equal(replayOf(Buffer.from("a\nb"), false).toString(), "a\nb");
    assert.equal(replayOf(Buffer.from("half line\nwhole\n"), true).toString(), "whole\n");
    assert.equal(replayOf(Buffer.from("\x1b[31mno line end"), true).length, 0);
    // UTF-8 survives byte for byte.
    assert.equal(replayOf(Buffer.from("grüße ✓\n"), false).toString("utf8"), "grüße ✓\n");
  });

  test("replayOf drops terminal queries (the viewer's terminal would answer them as if typed) and keeps everything else", () => {
    const queries = ["\x1b[6n", "\x1b[5n", "\x1b[?6n", "\x1b[c", "\x1b[0c", "\x1b[>c", "\x1b[=c", "\x1b[?25$p", "\x1b[18t", "\x1b[>q", "\x1bP$qm\x1b\\", "\x1b]11;?\x07", "\x1b]10;?\x1b\\"];
    const shown = "\x1b[1;32mOK\x1b[0m \x1b[2J\x1b[H\x1b[?25l login: ";
    assert.equal(replayOf(Buffer.from(`${queries.join("")}${shown}`), false).toString("latin1"), shown);
    assert.equal(replayOf(Buffer.from(`a\x1b[6nb\x1b[cc`), false).toString(), "abc");
  });

  test("a missing socket is refused with a clear error", async () => {
    await assert.rejects(new SerialPorts().open("g5", path.join(dir, "nope.sock")), (err: GuesthouseError) => err.code === "qemu-failed" && /serial port/.test(err.message));
  });
});

describe("serial log", () => {
  test("rotates at the limit, and reads the older part first (a log under one block: copy then truncate)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-seriallog-"));
    const files = { serial: path.join(dir, "serial.sock"), serialLog: path.join(dir, "serial.log"), serialLogOld: path.join(dir, "serial.log.1") };
    try {
      await assert.rejects(readSerialLog(files, 1024), (err: GuesthouseError) => err.code === "not-found");
      // QEMU holds the log open with O_APPEND: after the truncation its writes land at the new end.
      const qemu = fs.openSync(files.serialLog, "a");
      fs.writeSync(qemu, "a".repeat(1000));
      assert.equal(await rotateSerialLog(files, 1024), false, "not full yet");
      fs.writeSync(qemu, "b".repeat(100));
      assert.equal(await rotateSerialLog(files, 1024), true);
      fs.writeSync(qemu, "after");
      fs.closeSync(qemu);
      assert.equal(fs.readFileSync(files.serialLog, "latin1"), "after", "no hole of zeros before the new output");
      assert.equal(fs.statSync(files.serialLogOld).size, 1100);
      const log = (await readSerialLog(files, 1024)).toString("latin1");
      assert.equal(log, `${"a".repeat(1000)}${"b".repeat(100)}after`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("rotating while a writer appends as fast as it can loses no line (the log's blocks are cut out in place)", async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-seriallog-"));
    const files = { serial: path.join(dir, "serial.sock"), serialLog: path.join(dir, "serial.log"), serialLogOld: path.join(dir, "serial.log.1") };
    try {
      fs.writeFileSync(path.join(dir, "probe"), Buffer.alloc(3 * 4096));
      if (spawnSync("fallocate", ["--collapse-range", "--offset", "0", "--length", "4096", path.join(dir, "probe")]).status !== 0) {
        return t.skip("this file system cannot cut ranges out of a file (tmpfs?): the agent falls back to copy-then-truncate here");
      }
      // A stand-in for QEMU: another process appending numbered lines with O_APPEND, flat out.
      const writer = spawn(process.execPath, [
        "-e",
        `const fs = require("node:fs"); const fd = fs.openSync(${JSON.stringify(files.serialLog)}, "a");
         for (let i = 0; i < 200000; i++) fs.writeSync(fd, "line-" + i + "\\n");`,
      ]);
      const ended = new Promise((resolve) => writer.once("exit", resolve));
      let running = true;
      void ended.then(() => (running = false));
      const kept: string[] = [];
      let rotations = 0;
      while (running) {
        if (await rotateSerialLog(files, 64 * 1024)) {
          rotations++;
          kept.push(fs.readFileSync(files.serialLogOld, "latin1"));
        }
      }
      await ended;
      const all = kept.join("") + fs.readFileSync(files.serialLog, "latin1");
      const lines = all.split("\n").filter(Boolean);
      assert.ok(rotations >= 5, `rotated ${rotations} times while the writer ran`);
      assert.equal(lines.length, 200000, "every line is in serial.log.1 (as it was at each rotation) or serial.log");
      lines.forEach((line, i) => {
        if (line !== `line-${i}`) assert.fail(`line ${i} is ${JSON.stringify(line)}`);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
