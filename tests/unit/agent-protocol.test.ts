/**
 * The agent's protocol (server/agent-protocol.ts), both sides on real unix sockets: every
 * route of the table reaches a handler of the agent's router (its host work stubbed to
 * refuse), and the client refuses an agent that speaks another protocol version, or none,
 * with an error that says what to upgrade: asked once per endpoint, and again once the
 * agent was lost (it may come back upgraded).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { AgentClient } from "../../server/agent-client";
import { AGENT_PROTOCOL_VERSION, AGENT_ROUTES, pathOf, type AgentRoute } from "../../server/agent-protocol";
import { createAgentServer } from "../../server/agent/api";
import type { Metrics } from "../../server/agent/metrics/sampler";
import type { AgentConfig } from "../../server/agent/config";
import type { Consoles } from "../../server/agent/console";
import type { Images } from "../../server/agent/images";
import type { Finding } from "../../server/agent/networks/doctor";
import type { Networks } from "../../server/agent/networks/manager";
import type { Supervisor } from "../../server/agent/supervisor";
import { GuesthouseError } from "../../server/domain/errors";

const folders: string[] = [];
after(() => folders.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

/** A fresh socket path: the client's version check is kept per endpoint, so each test has its own. */
function socketPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-proto-"));
  folders.push(dir);
  return path.join(dir, "agent.sock");
}

function listen(server: http.Server, at: string): Promise<http.Server> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(at, () => resolve(server));
  });
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Host work that refuses every call with a conflict, except what `real` provides: a request that reaches it was routed. */
function refusing<T>(what: string, real: Record<string, unknown> = {}): T {
  return new Proxy(real, { get: (target, key) => (key in target ? target[key as string] : key === "then" ? undefined : refusal(`${what}.${String(key)}`)) }) as T;
}
function refusal(what: string): unknown {
  return new Proxy(() => {}, {
    get: (_, key) => (key === "then" ? undefined : refusal(`${what}.${String(key)}`)),
    apply: () => {
      throw new GuesthouseError("conflict", `${what} is stubbed in this test.`);
    },
  });
}

/** The real agent server, its host work stubbed: an empty host whose every operation refuses. */
function stubbedAgent(): http.Server {
  const quiet = { list: () => [], on() {}, off() {} };
  return createAgentServer(
    refusing<AgentConfig>("config"),
    refusing<Supervisor>("supervisor", quiet),
    refusing<Images>("images", { tasks: refusing("tasks", quiet) }),
    refusing<Consoles>("consoles"),
    refusing<Networks>("networks"),
    refusal("doctor") as () => Promise<Finding[]>,
    { of: () => [], all: () => [], on() {}, off() {} } as never,
    refusing<Metrics>("metrics"),
  );
}

/** A path parameter the agent's own checks accept, by name. */
const VALID_PARAMS: Record<string, string> = { id: "t0000000001", volume: "vol00000001", pool: "default", file: "disk.qcow2", name: "demo.iso" };

interface Answer {
  status: number;
  json: { code?: string; message?: string } | null;
}

/** One request as the route's client would make it; an upgrade's refusal and an open stream count as answers. */
function ask(at: string, route: AgentRoute): Promise<Answer> {
  const payload = route.method === "POST" || route.body ? "{}" : route.rawBody ? "" : null;
  const headers: Record<string, string | number> = {
    ...(payload !== null ? { "content-type": route.rawBody ? "application/octet-stream" : "application/json", "content-length": payload.length } : {}),
    ...(route.upgrade ? { connection: "Upgrade", upgrade: route.upgrade } : {}),
  };
  const target = pathOf(route, VALID_PARAMS as never) + (route.rawBody ? "?size=0&offset=0" : "");
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: at, method: route.method, path: target, headers, agent: false }, (res) => {
      if (route.ndjson) {
        req.destroy();
        return resolve({ status: res.statusCode ?? 0, json: null });
      }
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: Answer["json"] = null;
        try {
          json = JSON.parse(text) as Answer["json"];
        } catch {
          // an upgrade's refusal is JSON too; anything else is not asked about
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, json: null });
    });
    req.on("error", reject);
    req.end(payload ?? undefined);
  });
}

describe("the agent's router and the protocol's table", () => {
  test("every route of the table reaches a handler: none is the router's 404, and each body is parsed with the table's schema", async () => {
    const at = socketPath();
    const server = await listen(stubbedAgent(), at);
    try {
      const unanswered: string[] = [];
      for (const [name, route] of Object.entries(AGENT_ROUTES) as Array<[string, AgentRoute]>) {
        const answer = await ask(at, route);
        if (answer.status === 404) unanswered.push(`${name}: ${route.method} ${route.path} → ${answer.json?.message}`);
        if (route.body) {
          assert.equal(answer.status, 400, `${name}: an empty body is refused`);
          assert.ok(answer.json?.message?.startsWith(`${route.body.description} is not valid.`), `${name}: refused by its table schema (${answer.json?.message})`);
        }
      }
      assert.deepEqual(unanswered, [], "routes of the table the agent does not answer");
      const stray = await ask(at, { method: "GET", path: "/v1/no-such-route", summary: "" });
      assert.equal(stray.status, 404, "a path outside the table is the router's 404");
      assert.equal(stray.json?.code, "not-found");
    } finally {
      await close(server);
    }
  });
});

/** A fake agent that says it speaks `protocol` (null: an agent from before versions, which answers 404), and records what it was asked. */
function fakeAgent(protocol: () => number | null) {
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    const json = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    const version = protocol();
    if (req.url === AGENT_ROUTES.version.path) {
      return version === null ? json(404, { code: "not-found", message: `No such agent endpoint: GET ${req.url}` }) : json(200, { protocol: version });
    }
    if (req.url === AGENT_ROUTES.guests.path) return json(200, []);
    if (req.url === AGENT_ROUTES.events.path) return res.writeHead(200, { "content-type": "application/x-ndjson" }).end(); // the agent went away
    json(404, { code: "not-found", message: "not faked" });
  });
  return { server, asked };
}

const versionError = (pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof GuesthouseError, String(err));
  assert.equal(err.code, "agent-unreachable");
  assert.match(err.message, pattern);
  return true;
};

describe("the client checks the agent's protocol version at connect", () => {
  test("an agent of another version is refused before any other request, naming both versions and what to upgrade", async () => {
    const at = socketPath();
    const other = AGENT_PROTOCOL_VERSION + 1;
    const fake = fakeAgent(() => other);
    await listen(fake.server, at);
    try {
      const client = new AgentClient(`unix:${at}`);
      const expected = new RegExp(`speaks agent protocol ${other}, and this web server speaks ${AGENT_PROTOCOL_VERSION}\\. Upgrade the agent on that host, or the web, so that both are the same Guesthouse version\\.`);
      await assert.rejects(client.guests(), versionError(expected));
      await assert.rejects(client.openSerial("guest0001"), versionError(expected));
      await assert.rejects(client.events(() => {}).done, versionError(expected));
      assert.deepEqual(fake.asked, Array(3).fill("GET /v1/version"), "a refused check is not kept, and nothing else was sent");
    } finally {
      await close(fake.server);
    }
  });

  test("an agent that names no version (one from before versions) is refused, saying to upgrade it", async () => {
    const at = socketPath();
    const fake = fakeAgent(() => null);
    await listen(fake.server, at);
    try {
      await assert.rejects(new AgentClient(`unix:${at}`).guests(), versionError(/does not say which agent protocol it speaks.*Upgrade the agent on that host/));
      assert.deepEqual(fake.asked, ["GET /v1/version"]);
    } finally {
      await close(fake.server);
    }
  });

  test("the real agent's version passes, asked once for every client of the endpoint", async () => {
    const at = socketPath();
    const server = stubbedAgent();
    const asked: string[] = [];
    server.on("request", (req: http.IncomingMessage) => asked.push(`${req.method} ${req.url}`));
    await listen(server, at);
    try {
      assert.deepEqual(await Promise.all([new AgentClient(`unix:${at}`).guests(), new AgentClient(`unix:${at}`).tasks()]), [[], []]);
      assert.deepEqual(await new AgentClient(`unix:${at}`).guests(), []);
      assert.deepEqual(asked.sort(), ["GET /v1/guests", "GET /v1/guests", "GET /v1/tasks", "GET /v1/version"]);
    } finally {
      await close(server);
    }
  });

  test("once the agent is lost (unreachable, or its event stream ended), it is asked again: an upgraded agent is found out", async () => {
    const at = socketPath();
    let version = AGENT_PROTOCOL_VERSION;
    let fake = fakeAgent(() => version);
    await listen(fake.server, at);
    const client = new AgentClient(`unix:${at}`);
    assert.deepEqual(await client.guests(), []);

    // Its event stream ends (the agent stopped); it comes back speaking another version.
    await client.events(() => {}).done;
    version = AGENT_PROTOCOL_VERSION + 1;
    await assert.rejects(client.guests(), versionError(/speaks agent protocol/));
    version = AGENT_PROTOCOL_VERSION;
    assert.deepEqual(await client.guests(), []);

    // Unreachable, then back with another version.
    await close(fake.server);
    fs.rmSync(at, { force: true });
    await assert.rejects(client.guests(), (err: GuesthouseError) => err.code === "agent-unreachable" && /not reachable/.test(err.message));
    fake = fakeAgent(() => AGENT_PROTOCOL_VERSION + 1);
    await listen(fake.server, at);
    try {
      await assert.rejects(client.guests(), versionError(/speaks agent protocol/));
      assert.deepEqual(fake.asked, ["GET /v1/version"]);
    } finally {
      await close(fake.server);
    }
  });
});
