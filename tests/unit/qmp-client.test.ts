/**
 * QmpClient against a hostile fake QMP server on a real unix socket: the greeting
 * and every reply arrive one byte at a time, events are slipped in between lines,
 * replies come back out of order, and the peer misbehaves in the ways QEMU never
 * should (bad greeting, silence, garbage, unknown ids, dropped sockets).
 */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setImmediate as tick } from "node:timers/promises";
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { QmpClient, QmpCommandError, type QmpEvent, type QmpRunstate } from "../../server/qemu/qmp";
import { GuesthouseError, type ErrorCode } from "../../server/domain/errors";

type Json = Record<string, unknown>;

const GREETING = {
  QMP: { version: { qemu: { micro: 0, minor: 2, major: 9 }, package: "Debian 1:9.2+dfsg-ü" }, capabilities: ["oob"] },
};

const event = (name: string, data: Json = {}) => ({
  event: name,
  data,
  timestamp: { seconds: 1700000000, microseconds: 42 },
});

/** One connection as the fake sees it. */
class Peer {
  /** Every line the client wrote, parsed (or raw when not JSON). */
  readonly received: unknown[] = [];
  private readonly waiting: ((msg: Json) => void)[] = [];
  private readonly queued: Json[] = [];
  private buffer = "";
  closed = false;

  constructor(readonly sock: net.Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        let msg: unknown;
        try {
          msg = JSON.parse(line);
        } catch {
          msg = line;
        }
        this.received.push(msg);
        const waiter = this.waiting.shift();
        if (waiter) waiter(msg as Json);
        else this.queued.push(msg as Json);
      }
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      this.closed = true;
    });
  }

  /** The next command the client sends. */
  next(): Promise<Json> {
    const msg = this.queued.shift();
    if (msg) return Promise.resolve(msg);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Writes `text` one byte per write, yielding to the event loop between bytes. */
  async dribble(text: string): Promise<void> {
    const bytes = Buffer.from(text, "utf8");
    for (let i = 0; i < bytes.length; i++) {
      if (this.sock.destroyed) return;
      await new Promise<void>((resolve) => this.sock.write(bytes.subarray(i, i + 1), () => resolve()));
      await tick();
    }
  }

  /** Sends whole JSON lines, each dribbled byte by byte. */
  async send(...messages: unknown[]): Promise<void> {
    for (const m of messages) await this.dribble(`${typeof m === "string" ? m : JSON.stringify(m)}\n`);
  }

  async greet(): Promise<void> {
    await this.send(GREETING);
  }

  /** Greets, then answers qmp_capabilities (with an event slipped in first). */
  async handshake(): Promise<Json> {
    await this.greet();
    const caps = await this.next();
    await this.send(event("RESUME"), { return: {}, id: caps.id });
    return caps;
  }
}

/** A fake QMP server; each test gives it a script for the connections it accepts. */
class FakeQmp {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-qmp-"));
  readonly socketPath = path.join(this.dir, "qmp.sock");
  readonly peers: Peer[] = [];
  /** What each new connection does; replaced per test. */
  script: (peer: Peer) => Promise<void> = async (peer) => {
    await peer.handshake();
  };
  private readonly server: net.Server;

  constructor(options: net.ServerOpts = {}) {
    this.server = net.createServer(options, (sock) => {
      const peer = new Peer(sock);
      this.peers.push(peer);
      this.script(peer).catch(() => {
        // A script ends early when the client goes away; that is the point of some tests.
      });
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  async close(): Promise<void> {
    for (const p of this.peers) p.sock.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The most recent connection. */
  get peer(): Peer {
    const p = this.peers.at(-1);
    assert.ok(p, "the fake has no connection");
    return p;
  }
}

function isCode(code: ErrorCode) {
  return (err: unknown) => {
    assert.ok(err instanceof GuesthouseError, `expected a GuesthouseError, got ${String(err)}`);
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
    return true;
  };
}

/** Records everything a client reports. */
function watch(client: QmpClient) {
  const states: QmpRunstate[] = [];
  const events: QmpEvent[] = [];
  const disconnects: (Error | null)[] = [];
  client.on("state", (s) => states.push(s));
  client.on("event", (e) => events.push(e));
  client.on("disconnect", (e) => disconnects.push(e));
  return { states, events, disconnects };
}

function once<T>(emitter: QmpClient, name: "disconnect"): Promise<T> {
  return new Promise((resolve) => emitter.once(name, (e) => resolve(e as T)));
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const TEST = { timeout: 5000 };

describe("QmpClient against a hostile fake QMP server", () => {
  let fake: FakeQmp;
  const clients: QmpClient[] = [];
  const client = () => {
    const c = new QmpClient();
    clients.push(c);
    return c;
  };

  before(async () => {
    fake = new FakeQmp();
    await fake.listen();
  });
  after(async () => {
    for (const c of clients) await c.close();
    await fake.close();
  });

  test("greeting (1-byte chunks) is checked, then qmp_capabilities is the first thing sent", TEST, async () => {
    let sentBeforeGreetingDone = -1;
    fake.script = async (peer) => {
      await peer.greet();
      sentBeforeGreetingDone = peer.received.length;
      const caps = await peer.next();
      await peer.send(event("RESUME"), { return: {}, id: caps.id });
    };
    const c = client();
    const seen = watch(c);
    const greeting = await c.connect(fake.socketPath, 3000);
    assert.deepEqual(greeting, GREETING, "the greeting, with its multi-byte character intact");
    assert.deepEqual(c.greeting, GREETING);
    assert.equal(c.state, "running");
    assert.equal(sentBeforeGreetingDone, 0, "the client wrote before the greeting was complete");
    assert.equal(fake.peer.received.length, 1);
    const caps = fake.peer.received[0] as Json;
    assert.equal(caps.execute, "qmp_capabilities");
    assert.equal(typeof caps.id, "string");
    assert.deepEqual(Object.keys(caps).sort(), ["execute", "id"]);
    // The event sent before the capabilities reply still reached listeners.
    assert.deepEqual(seen.events.map((e) => e.event), ["RESUME"]);
    await c.close();
  });

  test("replies are matched by id when answered out of order, with events in between", TEST, async () => {
    fake.script = async (peer) => {
      await peer.handshake();
      const a = await peer.next();
      const b = await peer.next();
      // Answer the second call first; events before, between and after.
      await peer.send(
        event("STOP"),
        { return: { name: "second", echo: b.arguments }, id: b.id },
        event("RESUME"),
        event("STOP"),
        { return: { name: "first", echo: a.arguments }, id: a.id },
        event("RESUME"),
      );
    };
    const c = client();
    const seen = watch(c);
    await c.connect(fake.socketPath, 3000);
    const [first, second] = await Promise.all([
      c.execute("query-status", { n: 1 }),
      c.execute("query-name", { n: 2 }),
    ]);
    assert.deepEqual(first, { name: "first", echo: { n: 1 } });
    assert.deepEqual(second, { name: "second", echo: { n: 2 } });
    const [a, b] = fake.peer.received.slice(1) as Json[];
    assert.equal(a?.execute, "query-status");
    assert.equal(b?.execute, "query-name");
    assert.notEqual(a?.id, b?.id, "each call has its own id");
    await waitFor(() => seen.events.length === 5);
    assert.deepEqual(seen.events.map((e) => e.event), ["RESUME", "STOP", "RESUME", "STOP", "RESUME"]);
    await c.close();
  });

  test("events go to on('event') and never resolve a call, even one carrying the call's id", TEST, async () => {
    let callId: unknown;
    fake.script = async (peer) => {
      await peer.handshake();
      const cmd = await peer.next();
      callId = cmd.id;
      await peer.send(
        { event: "STOP", id: cmd.id, data: {} },
        { event: "SHUTDOWN", data: { guest: true, reason: "guest-shutdown" }, timestamp: { seconds: 1, microseconds: 2 } },
      );
      // Give the client every chance to wrongly settle the call on an event.
      await new Promise((r) => setTimeout(r, 50));
      await peer.send({ return: { status: "running" }, id: cmd.id });
    };
    const c = client();
    const seen = watch(c);
    await c.connect(fake.socketPath, 3000);
    let settled = false;
    const call = c.execute("query-status").finally(() => {
      settled = true;
    });
    await waitFor(() => seen.events.length === 3);
    assert.equal(settled, false, "an event settled a pending call");
    assert.deepEqual(await call, { status: "running" });
    assert.deepEqual(seen.events.slice(1), [
      { event: "STOP", id: callId, data: {} },
      { event: "SHUTDOWN", data: { guest: true, reason: "guest-shutdown" }, timestamp: { seconds: 1, microseconds: 2 } },
    ]);
    await c.close();
  });

  test("an error reply rejects with qmp-error naming QEMU's desc, its class and desc kept as fields; the connection stays usable", TEST, async () => {
    const desc = "Device 'nøpe' not found";
    fake.script = async (peer) => {
      await peer.handshake();
      const bad = await peer.next();
      await peer.send(event("STOP"), { error: { class: "DeviceNotFound", desc }, id: bad.id }, event("RESUME"));
      const good = await peer.next();
      await peer.send({ return: 7, id: good.id });
    };
    const c = client();
    await c.connect(fake.socketPath, 3000);
    await assert.rejects(c.execute("device_del", { id: "nope" }), (err: unknown) => {
      isCode("qmp-error")(err);
      assert.ok((err as Error).message.includes(desc), (err as Error).message);
      assert.ok((err as Error).message.includes("device_del"), "the message names the command");
      assert.ok(err instanceof QmpCommandError);
      assert.deepEqual([err.command, err.errorClass, err.desc], ["device_del", "DeviceNotFound", desc]);
      return true;
    });
    assert.equal(c.state, "running");
    assert.equal(await c.execute("query-whatever"), 7);
    await c.close();
  });

  test("a call QEMU never answers rejects with timeout; its late reply is dropped and the connection stays usable", TEST, async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    fake.script = async (peer) => {
      await peer.handshake();
      const stuck = await peer.next();
      await released;
      await peer.send({ return: "late", id: stuck.id });
      const good = await peer.next();
      await peer.send({ return: 8, id: good.id });
    };
    const c = client();
    await c.connect(fake.socketPath, 3000);
    const t0 = Date.now();
    await assert.rejects(c.execute("quit", undefined, 150), (err: unknown) => {
      isCode("timeout")(err);
      assert.match((err as Error).message, /quit/);
      return true;
    });
    assert.ok(Date.now() - t0 < 1000);
    release();
    assert.equal(await c.execute("query-status"), 8, "the late reply was not taken for this call");
    assert.equal(c.state, "running");
    await c.close();
  });

  test("dropping the socket with two calls pending rejects both with qmp-disconnected and fires disconnect", TEST, async () => {
    fake.script = async (peer) => {
      await peer.handshake();
      await peer.next();
      await peer.next();
      await peer.send(event("STOP"));
      peer.sock.destroy();
    };
    const c = client();
    const seen = watch(c);
    await c.connect(fake.socketPath, 3000);
    const disconnected = once<Error | null>(c, "disconnect");
    const results = await Promise.allSettled([c.execute("query-status"), c.execute("query-block")]);
    for (const r of results) {
      assert.equal(r.status, "rejected");
      if (r.status === "rejected") isCode("qmp-disconnected")(r.reason);
    }
    await disconnected;
    assert.equal(seen.disconnects.length, 1, "exactly one disconnect");
    assert.equal(c.state, "idle");
    assert.deepEqual(seen.states, ["connecting", "running", "idle"]);
  });

  test("execute before connect rejects with qmp-state and opens nothing", TEST, async () => {
    const before = fake.peers.length;
    const c = client();
    const seen = watch(c);
    await assert.rejects(c.execute("query-status"), isCode("qmp-state"));
    assert.equal(c.state, "idle");
    assert.deepEqual(seen.states, []);
    await tick();
    assert.equal(fake.peers.length, before, "a connection was opened");
  });

  test("execute while still connecting rejects with qmp-state and writes nothing", TEST, async () => {
    fake.script = async (peer) => {
      await new Promise((r) => setTimeout(r, 100));
      await peer.handshake();
    };
    const c = client();
    const connecting = c.connect(fake.socketPath, 3000);
    assert.equal(c.state, "connecting");
    await assert.rejects(c.execute("query-status"), isCode("qmp-state"));
    await connecting;
    assert.deepEqual(
      fake.peer.received.map((m) => (m as Json).execute),
      ["qmp_capabilities"],
    );
    await c.close();
  });

  test("execute after close rejects with qmp-state and writes nothing", TEST, async () => {
    fake.script = async (peer) => {
      await peer.handshake();
    };
    const c = client();
    await c.connect(fake.socketPath, 3000);
    const peer = fake.peer;
    await c.close();
    await assert.rejects(c.execute("query-status"), isCode("qmp-state"));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(peer.received.length, 1, "only qmp_capabilities ever reached the peer");
  });

  test("state sequence on a clean close is exactly connecting → running → disconnecting → idle", TEST, async () => {
    fake.script = async (peer) => {
      await peer.handshake();
    };
    const c = client();
    const seen = watch(c);
    await c.connect(fake.socketPath, 3000);
    await c.close();
    assert.deepEqual(seen.states, ["connecting", "running", "disconnecting", "idle"]);
    assert.deepEqual(seen.disconnects, [null], "one disconnect, without an error");
    assert.equal(c.state, "idle");
    await waitFor(() => fake.peer.closed);
    // close() again is a no-op, not another transition.
    await c.close();
    assert.deepEqual(seen.states, ["connecting", "running", "disconnecting", "idle"]);
  });

  test("close with a call pending rejects it with qmp-disconnected", TEST, async () => {
    fake.script = async (peer) => {
      await peer.handshake();
      await peer.next(); // never answered
    };
    const c = client();
    await c.connect(fake.socketPath, 3000);
    const call = c.execute("query-status");
    await waitFor(() => fake.peer.received.length === 2);
    await c.close();
    await assert.rejects(call, isCode("qmp-disconnected"));
  });

  test("close finishes even when the peer never closes its side", TEST, async () => {
    const stubborn = new FakeQmp({ allowHalfOpen: true });
    stubborn.script = async (peer) => {
      await peer.handshake();
    };
    await stubborn.listen();
    try {
      const c = client();
      await c.connect(stubborn.socketPath, 3000);
      const t0 = Date.now();
      await c.close();
      assert.ok(Date.now() - t0 < 3000, "close hung on a half-open peer");
      assert.equal(c.state, "idle");
    } finally {
      await stubborn.close();
    }
  });

  test("the same client can connect again after a clean close", TEST, async () => {
    fake.script = async (peer) => {
      await peer.handshake();
      const cmd = await peer.next();
      await peer.send({ return: "again", id: cmd.id });
    };
    const c = client();
    await c.connect(fake.socketPath, 3000);
    await c.close();
    await c.connect(fake.socketPath, 3000);
    assert.equal(await c.execute("query-name"), "again");
    await c.close();
  });

  const badGreetings: [string, string][] = [
    ["an object without QMP", `{"hello":1}`],
    ["QMP without version", `{"QMP":{"capabilities":[]}}`],
    ["QMP without capabilities", `{"QMP":{"version":{"qemu":{"major":9,"minor":0,"micro":0}}}}`],
    ["an event instead of a greeting", JSON.stringify(event("STOP"))],
    ["a reply instead of a greeting", `{"return":{},"id":"gh-1"}`],
  ];
  for (const [name, line] of badGreetings) {
    test(`a bad greeting (${name}) makes connect reject with qmp-error`, TEST, async () => {
      fake.script = async (peer) => {
        await peer.send(line);
      };
      const c = client();
      const seen = watch(c);
      await assert.rejects(c.connect(fake.socketPath, 3000), isCode("qmp-error"));
      assert.equal(c.state, "idle");
      assert.deepEqual(seen.states, ["connecting", "idle"]);
      await waitFor(() => fake.peer.closed);
      assert.deepEqual(fake.peer.received, [], "the client negotiated with a peer that never greeted properly");
    });
  }

  test("a peer that never greets makes connect reject with timeout", TEST, async () => {
    fake.script = async () => {
      // Accept and say nothing.
    };
    const c = client();
    const seen = watch(c);
    const t0 = Date.now();
    await assert.rejects(c.connect(fake.socketPath, 150), isCode("timeout"));
    const took = Date.now() - t0;
    assert.ok(took >= 100 && took < 2000, `took ${took} ms`);
    assert.equal(c.state, "idle");
    assert.deepEqual(seen.states, ["connecting", "idle"]);
    await waitFor(() => fake.peer.closed);
  });

  test("a peer that greets but never answers qmp_capabilities cannot hang connect", TEST, async () => {
    fake.script = async (peer) => {
      await peer.greet();
      await peer.next(); // never answered
    };
    const c = client();
    const t0 = Date.now();
    await assert.rejects(c.connect(fake.socketPath, 200), isCode("timeout"));
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(c.state, "idle");
  });

  test("connecting to a socket nobody listens on rejects with a GuesthouseError", TEST, async () => {
    const c = client();
    await assert.rejects(c.connect(path.join(fake.dir, "nobody.sock"), 1000), isCode("qmp-disconnected"));
    assert.equal(c.state, "idle");
  });

  test("garbage instead of the greeting makes connect reject with qmp-error", TEST, async () => {
    fake.script = async (peer) => {
      await peer.send("QEMU says hi");
    };
    const c = client();
    await assert.rejects(c.connect(fake.socketPath, 3000), isCode("qmp-error"));
    assert.equal(c.state, "idle");
  });

  const garbage: [string, string][] = [
    ["not JSON", "this is not json"],
    ["a JSON array", "[1,2,3]"],
    ["a JSON string", `"running"`],
    ["JSON null", "null"],
  ];
  for (const [name, line] of garbage) {
    test(`${name} while running closes the connection with qmp-error`, TEST, async () => {
      fake.script = async (peer) => {
        await peer.handshake();
        await peer.next();
        await peer.send(event("STOP"), line);
      };
      const c = client();
      const seen = watch(c);
      await c.connect(fake.socketPath, 3000);
      const disconnected = once<Error | null>(c, "disconnect");
      const call = c.execute("query-status");
      await assert.rejects(call, isCode("qmp-disconnected"));
      isCode("qmp-error")(await disconnected);
      assert.equal(c.state, "idle");
      assert.deepEqual(seen.states, ["connecting", "running", "idle"]);
      assert.deepEqual(seen.events.map((e) => e.event), ["RESUME", "STOP"]);
      await waitFor(() => fake.peer.closed);
    });
  }

  const strayReplies: [string, (id: unknown) => unknown][] = [
    ["an unknown id", () => ({ return: {}, id: "gh-999999" })],
    ["no id at all", () => ({ return: {} })],
    ["a numeric id", () => ({ return: {}, id: 1 })],
  ];
  for (const [name, reply] of strayReplies) {
    test(`a reply with ${name} is a protocol error: the connection closes with qmp-error`, TEST, async () => {
      fake.script = async (peer) => {
        await peer.handshake();
        const cmd = await peer.next();
        await peer.send(reply(cmd.id));
      };
      const c = client();
      await c.connect(fake.socketPath, 3000);
      const disconnected = once<Error | null>(c, "disconnect");
      await assert.rejects(c.execute("query-status"), isCode("qmp-disconnected"));
      isCode("qmp-error")(await disconnected);
      assert.equal(c.state, "idle");
    });
  }

  test("a reply to an already answered id is a protocol error too", TEST, async () => {
    fake.script = async (peer) => {
      await peer.handshake();
      const cmd = await peer.next();
      await peer.send({ return: 1, id: cmd.id }, { return: 2, id: cmd.id });
    };
    const c = client();
    await c.connect(fake.socketPath, 3000);
    const disconnected = once<Error | null>(c, "disconnect");
    assert.equal(await c.execute("query-status"), 1);
    isCode("qmp-error")(await disconnected);
    assert.equal(c.state, "idle");
  });

  // The greeting and a bad line in the same chunk: the bad line is handled before
  // connect resumes, so connect must notice the closed connection (a regression test:
  // it once went on to "running" and failed with a raw TypeError).
  const sameChunk: [string, string][] = [
    ["garbage", "not json"],
    ["a stray reply", `{"return":{},"id":"gh-999"}`],
  ];
  for (const [name, line] of sameChunk) {
    test(`greeting and ${name} in one chunk: connect rejects with qmp-error, cleanly`, TEST, async () => {
      fake.script = async (peer) => {
        peer.sock.write(`${JSON.stringify(GREETING)}\n${line}\n`);
      };
      const c = client();
      const seen = watch(c);
      await assert.rejects(c.connect(fake.socketPath, 3000), isCode("qmp-error"));
      assert.equal(c.state, "idle");
      assert.deepEqual(seen.states, ["connecting", "idle"]);
      assert.equal(seen.disconnects.length, 1, "exactly one disconnect");
    });
  }
});
