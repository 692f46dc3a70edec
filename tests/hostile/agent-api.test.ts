/**
 * The agent's API under hostile input, property-based (fast-check): every endpoint fed
 * random and boundary requests (names with shell metacharacters, "..", NUL, encoded
 * slashes, unicode, overlong; bodies of every JSON shape, valid bodies with one field
 * made hostile, text that is not JSON) against a real agent with a running guest, while
 * strace records every file the agent and its children touch by name. What must hold:
 * no crash and no internal error (every refusal a clear 4xx, or QEMU's own 5xx), no file
 * touched outside the agent's folders and the system's read-only ones, and no image
 * opened by name by QEMU. The figures go to .cache/hostile-figures.json for
 * docs/security.md. Bounded: a fixed number of requests (HOSTILE_RUNS, default 1500).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import fc from "fast-check";
import { startTestAgent, type TestAgent } from "../helpers/agent";
import { FileTrace, type FileAccess } from "../helpers/file-trace";
import { createTestImage, testDisk, testSpec } from "../helpers/specs";
import { story } from "../helpers/story";
import { recordFigures } from "./figures";

const RUNS = Number(process.env.HOSTILE_RUNS ?? 1500);
/** The programs the agent runs. */
const PROGRAMS = new Set(["qemu-img", "qemu-system-x86_64", "python3", "openssl"]);
const PROJECT = process.cwd();

/** Path segments an attacker would try, beside random ones. */
const HOSTILE_SEGMENTS = [
  "..", ".", "%2e%2e", "%2E%2E%2F", "..%2f..%2fetc%2fshadow", "%2Fetc%2Fshadow", "%00", "a%00.qcow2", "seed.qcow2%00.iso",
  "$(id)", "%60id%60", "a;rm%20-rf%20%2F", "a%7Cb", "%0a", "%0d%0aX-Evil:%201", "'", "%22", "*", "~root", "-rf", "--help",
  "demo.iso", "seed.qcow2", ".seed.qcow2", "seed.qcow2.part", "x".repeat(300), "%C3%A9t%C3%A9.qcow2", "%E2%80%AE.qcow2", "%F0%9F%92%A3",
  "default", "isos", "..%5c..%5cwindows", "%252e%252e", "CON", "guestfuzz0001", "volseed00001", "nosuchguest0",
];

/** A path segment: hostile, valid-looking, or random text (percent-encoded as a client would send it, or raw). */
const segment = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_SEGMENTS) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 40 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,30}$/) },
);

/** A value to put where a valid body has one. */
const hostileValue = fc.oneof(
  fc.constantFrom("../../etc/shadow", "/etc/shadow", "demo.iso", "seed.qcow2", "$(touch /tmp/pwned)", "a\u0000b", "", " ", "\u202e", "x".repeat(5000)),
  fc.constantFrom(-1, 0, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, 0.5, NaN),
  fc.constantFrom(null, true, false, [], {}, [null], { __proto__: { admin: true } }, { constructor: { prototype: { polluted: 1 } } }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Valid bodies of the endpoints that take one, to make hostile one field at a time. */
const spec = testSpec("guestfuzz0001", { disks: [testDisk("volseed00001")] });
const VALID_BODIES: Record<string, Record<string, unknown>> = {
  spec: spec as unknown as Record<string, unknown>,
  disk: { disk: testDisk("volseed00002") },
  create: { pool: "default", file: "new.qcow2", format: "qcow2", bytes: 2 ** 20, volume: "volfuzz00001" },
  clone: { to: { pool: "default", file: "clone.qcow2" }, format: "qcow2", mode: "linked" },
  convert: { to: { pool: "default", file: "conv.raw" }, format: "raw", sourceFormat: "qcow2" },
  resize: { format: "qcow2", bytes: 2 ** 21, shrink: false },
  snapshot: { format: "qcow2", op: "create", name: "snap" },
  check: { format: "qcow2" },
  list: { formats: { "default/seed.qcow2": "qcow2" } },
  type: { text: "echo hello", layout: "en-us" },
};

/** A body: a valid one with one field (perhaps nested) replaced, any JSON, or something that is not JSON. */
const body = (kind: keyof typeof VALID_BODIES | null) =>
  fc.oneof(
    ...(kind
      ? [
          {
            weight: 4,
            arbitrary: fc.tuple(fc.constantFrom(...Object.keys(VALID_BODIES[kind]!)), hostileValue).map(([key, value]) => JSON.stringify({ ...VALID_BODIES[kind], [key]: value })),
          },
          { weight: 1, arbitrary: fc.constant(JSON.stringify(VALID_BODIES[kind])) },
        ]
      : []),
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.constantFrom("", "{", "null", "[]".repeat(10_000), `{"a":${"[".repeat(5000)}`, "\uFFFF\u0000", "x".repeat(300 * 1024)) },
  );

/** The agent's endpoints: method, path with holes, and the body kind it takes (if any). */
const ENDPOINTS: Array<[string, string, keyof typeof VALID_BODIES | null]> = [
  ["GET", "/v1/host", null],
  ["GET", "/v1/guests", null],
  ["GET", "/v1/guests/{}", null],
  ["POST", "/v1/guests/{}/argv", "spec"],
  ["POST", "/v1/guests/{}/start", "spec"],
  ["POST", "/v1/guests/{}/shutdown", null],
  ["POST", "/v1/guests/{}/reboot", "spec"],
  ["POST", "/v1/guests/{}/reset", null],
  ["POST", "/v1/guests/{}/pause", null],
  ["POST", "/v1/guests/{}/resume", null],
  ["POST", "/v1/guests/{}/force-off", null],
  ["POST", "/v1/guests/{}/restart", "spec"],
  ["DELETE", "/v1/guests/{}", null],
  ["POST", "/v1/guests/{}/disks", "disk"],
  ["DELETE", "/v1/guests/{}/disks/{}", null],
  ["GET", "/v1/guests/{}/serial-log", null],
  ["GET", "/v1/guests/{}/screenshot?width={}", null],
  ["POST", "/v1/guests/{}/type", "type"],
  ["POST", "/v1/guests/{}/vnc-tls-password", null],
  ["GET", "/v1/guests/{}/vnc", null],
  ["GET", "/v1/tls/ca", null],
  ["GET", "/v1/tasks/{}", null],
  ["POST", "/v1/tasks/{}/cancel", null],
  ["POST", "/v1/images/list", "list"],
  ["POST", "/v1/images", "create"],
  ["GET", "/v1/images/{}/{}?format={}", null],
  ["DELETE", "/v1/images/{}/{}?volume={}", null],
  ["POST", "/v1/images/{}/{}/clone", "clone"],
  ["POST", "/v1/images/{}/{}/convert", "convert"],
  ["POST", "/v1/images/{}/{}/resize", "resize"],
  ["POST", "/v1/images/{}/{}/snapshots", "snapshot"],
  ["POST", "/v1/images/{}/{}/check", "check"],
  ["GET", "/v1/uploads/{}/{}", null],
  ["PUT", "/v1/uploads/{}/{}?size={}&offset={}", null],
  ["DELETE", "/v1/uploads/{}/{}", null],
  ["DELETE", "/v1/isos/{}", null],
  ["PATCH", "/v1/{}", null],
  ["GET", "/{}/{}/{}", null],
];

interface Answer {
  status: number;
  json: { code?: string; message?: string } | null;
}

story("the agent's API under hostile input", (step) => {
  let agent: TestAgent;
  let trace: FileTrace;
  let accesses: FileAccess[] = [];
  const statuses = new Map<number, number>();
  const internals: string[] = [];
  let tried = 0;
  let started = 0;
  let seconds = 0;

  /** One raw request on the agent's socket: the path exactly as written (no URL normalization). */
  const send = (method: string, target: string, payload: string | null): Promise<Answer> =>
    new Promise((resolve, reject) => {
      // Content-Length always: Node sends a GET's or DELETE's body unframed otherwise, which is no HTTP at all.
      const headers = payload === null ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) };
      const req = http.request({ socketPath: agent.socketPath, method, path: target, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let json: Answer["json"] = null;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Answer["json"];
          } catch {
            // not JSON: a PNG, a log, an event stream
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      });
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${target}: no answer in 60 s`)));
      req.on("error", reject);
      req.end(payload ?? undefined);
    });

  before(async () => {
    agent = await startTestAgent();
    // The running guest's disk, one to plug in, and a plain image the requests name.
    await createTestImage(agent.client, "volseed00001", "qcow2", 1);
    await createTestImage(agent.client, "volseed00002", "qcow2", 1);
    fs.copyFileSync(path.join(agent.dataDir, "disks", "volseed00002.qcow2"), path.join(agent.dataDir, "disks", "seed.qcow2"));
    await agent.client.start(spec);
    trace = await FileTrace.attach(agent.process.pid!, path.join(agent.dataDir, "..", `${path.basename(agent.dataDir)}.strace`), PROJECT);
  });
  after(async () => {
    fs.rmSync(path.join(agent.dataDir, "..", `${path.basename(agent.dataDir)}.strace`), { force: true });
    await agent?.cleanup();
  });

  step("refusals arrive whole and the connection carries the next request: an oversized body, a body where none belongs, an upload whose length lies", async () => {
    // One connection for everything: each answer must leave it usable.
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const on = (method: string, target: string, body: Buffer | null, headers: Record<string, string | number> = {}) =>
      new Promise<Answer>((resolve, reject) => {
        const req = http.request({ socketPath: agent.socketPath, agent: keepAlive, method, path: target, headers: { ...(body ? { "content-length": body.length } : {}), ...headers } }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString("utf8") || "null") as Answer["json"] }));
        });
        req.on("socket", (socket) => sockets.add(socket));
        req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${target}: no answer in 30 s`)));
        req.on("error", reject);
        req.end(body ?? undefined);
      });
    try {
      const huge = await on("POST", "/v1/guests/guestfuzz0001/start", Buffer.alloc(2 * 1024 * 1024, 0x20), { "content-type": "application/json" });
      assert.equal(huge.status, 400);
      assert.match(huge.json?.message ?? "", /larger than \d+ bytes/);
      assert.equal((await on("GET", "/v1/host", null)).status, 200, "the same connection answers the next request");
      const bodied = await on("GET", "/v1/host", Buffer.from("{}"), { "content-type": "application/json" });
      assert.equal(bodied.status, 400);
      assert.match(bodied.json?.message ?? "", /takes no body/);
      const lying = await on("PUT", "/v1/uploads/default/lying.raw?size=4096&offset=0", Buffer.alloc(100), { "content-type": "application/octet-stream" });
      assert.equal(lying.status, 400);
      assert.match(lying.json?.message ?? "", /Content-Length \(100\) is not its size less its offset \(4096\)/);
      assert.equal((await on("GET", "/v1/host", null)).status, 200);
      assert.equal(sockets.size, 1, "every answer left the connection open for the next");
      assert.equal(fs.existsSync(path.join(agent.dataDir, "disks", "lying.raw.part")), false, "nothing of the refused upload is kept");
    } finally {
      keepAlive.destroy();
    }
  });

  step(`${RUNS} random and boundary requests to every endpoint: no crash, no internal error, every refusal says why`, { timeout: 600_000 }, async () => {
    const request = fc.constantFrom(...ENDPOINTS).chain(([method, template, kind]) =>
      fc.record({
        method: fc.constant(method),
        target: fc.array(segment, { minLength: 4, maxLength: 4 }).map((parts) => {
          let i = 0;
          return template.replace(/\{\}/g, () => parts[i++]!);
        }),
        payload: kind || method === "POST" ? body(kind).map((b) => b as string | null) : fc.constant(null),
      }),
    );
    const began = Date.now();
    await fc.assert(
      fc.asyncProperty(request, async ({ method, target, payload }) => {
        tried++;
        const answer = await send(method, target, method === "PUT" ? (payload ?? "") : payload);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (/\/start$/.test(target.split("?")[0]!) && answer.status === 200) started++;
        if (answer.status >= 500 && (answer.json?.code === "internal" || !answer.json?.code)) internals.push(`${method} ${target.slice(0, 120)} → ${answer.status} ${answer.json?.message ?? ""}`);
        assert.ok(answer.status >= 200 && answer.status < 600, `${method} ${target}: status ${answer.status}`);
        if (answer.status >= 400) {
          assert.ok(answer.json?.code && answer.json.message && answer.json.message.length > 10, `${method} ${target.slice(0, 80)}: a refusal says why (${JSON.stringify(answer.json)})`);
        }
        // The agent is alive and answering after every request.
        assert.equal((await send("GET", "/v1/host", null)).status, 200);
      }),
      { numRuns: RUNS, endOnFailure: true, includeErrorInReport: true },
    );
    seconds = (Date.now() - began) / 1000;
    assert.deepEqual(internals, [], "no internal errors");
  });

  step("no file outside the agent's folders and the system's read-only ones was touched by name; QEMU opened no image", async () => {
    accesses = await trace.stop();
    assert.ok(accesses.length > 100, `the trace saw the agent work (${accesses.length} accesses)`);
    const data = agent.dataDir;
    const tmp = os.tmpdir();
    const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
    // What the system offers every program to read: libraries, locale and time zone data, firmware, /proc.
    const SYSTEM_READ = ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/proc", "/sys", "/dev/null", "/dev/urandom", "/dev/random", "/dev/kvm", "/dev/pts", "/dev/tty"];
    const ETC_READ = /^\/etc\/(ld\.so\.(cache|preload)|localtime|nsswitch\.conf|passwd|group|subuid|subgid|host\.conf|hosts|resolv\.conf|gai\.conf|ssl\/.*|qemu\/.*|gnutls\/.*|crypto-policies\/.*|python3.*\/.*|gcrypt\/.*|os-release|mime\.types)$/;
    const mayRead = (p: string) =>
      under(p, data) || (agent.cgroupDir !== null && under(p, agent.cgroupDir)) || SYSTEM_READ.some((d) => under(p, d)) || ETC_READ.test(p) || under(p, PROJECT) || under(p, path.join(tmp, `tsx-${process.getuid!()}`)) || p === "/" || p === tmp || p === "/etc" || p === "/tmp" || p === "/dev";
    // The agent's own: its data folder, and the cgroups it makes for its guests' QEMUs (their pressure figures).
    const mayWrite = (p: string) => under(p, data) || (agent.cgroupDir !== null && under(p, agent.cgroupDir)) || under(p, path.join(tmp, `tsx-${process.getuid!()}`)) || p === "/dev/null";
    // Looking a program up on PATH tries each folder in turn: not an access to what is there.
    const pathSearch = (a: FileAccess) => a.syscall === "execve" && a.result !== "ok" && PROGRAMS.has(path.basename(a.path));
    const outside = accesses.filter((a) => !pathSearch(a) && !(a.writes ? mayWrite(a.path) : mayRead(a.path)));
    const qemuByName = accesses.filter((a) => /^qemu-system/.test(a.program) && a.syscall !== "execve" && (under(a.path, path.join(data, "disks")) || under(a.path, path.join(data, "images")) || under(a.path, path.join(data, "secrets"))));
    const hostile = accesses.filter((a) => /shadow|pwned|\/\.\.|\$\(/.test(a.path));
    recordFigures("agent-api", {
      requests: tried,
      seconds: Math.round(seconds * 10) / 10,
      statuses: Object.fromEntries([...statuses].sort(([a], [b]) => a - b)),
      guestsStartedByFuzz: started,
      fileAccessesSeen: accesses.length,
      programsSeen: [...new Set(accesses.map((a) => a.program).filter(Boolean))].sort(),
      internalErrors: internals.length,
      accessesOutsideAllowed: outside.length,
      qemuImagesOpenedByName: qemuByName.length,
      hostilePathsTouched: hostile.length,
    });
    assert.deepEqual(outside.map((a) => `${a.program} ${a.syscall} ${a.path} ${a.writes ? "(writes)" : ""} ${a.result}`).slice(0, 20), [], "touched outside the allowed folders");
    assert.deepEqual(qemuByName.map((a) => `${a.syscall} ${a.path}`), [], "QEMU opened an image, ISO or secret by name");
    assert.deepEqual(hostile.map((a) => `${a.program} ${a.syscall} ${a.path}`), [], "a hostile name reached the file system");
  });
});
