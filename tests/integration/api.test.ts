/**
 * The REST API (`/api/v1`) on the real web server with a real agent and database: tokens
 * (unknown, revoked, expired, scoped, limited to a team), what another team's caller is
 * told, ETags, power actions starting real QEMU, bodies refused with the field at fault,
 * the browser's session and its Origin, waiting for a task, and every answer checked
 * against the OpenAPI document the server serves.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020";
import WebSocket from "ws";
import { createToken } from "../../server/auth/api-tokens";
import { createSession, SESSION_COOKIE, type SessionUser } from "../../server/auth/sessions";
import { hashSecret } from "../../server/auth/tokens";
import { ENDPOINTS, type Endpoint } from "../../server/web/api/endpoints";
import { waitFor } from "../helpers/agent";
import { appEntries } from "../helpers/app-entries";
import { sessionUser } from "../helpers/db";
import { testDefinition } from "../helpers/specs";
import { startTestStack, type TestStack } from "../helpers/web";
import { Namespaces } from "../helpers/netns";

interface Answer {
  status: number;
  type: string;
  body: Record<string, unknown> | null;
  headers: Headers;
}

const RATE = 120;

describe("the REST API", () => {
  let stack: TestStack;
  let mia: SessionUser;
  let oz: SessionUser;
  let teamId = "";
  let guestId = "";
  let otherGuestId = "";
  let document: { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>>; components: { schemas: Record<string, object> } };
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  /** Every answer seen, checked against the document at the end. */
  const seen: Array<{ path: string; method: string; answer: Answer }> = [];
  const db = () => stack.database.db;
  const namespaces = new Namespaces();
  let agentNamespace = "";

  async function call(method: string, url: string, opts: { token?: string | null; cookie?: string; origin?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}, template = url): Promise<Answer> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.cookie) headers.cookie = opts.cookie;
    if (opts.origin) headers.origin = opts.origin;
    let body: string | undefined = opts.raw;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(`${stack.baseUrl}/api/v1${url}`, { method, headers, body });
    const text = await res.text();
    const answer = { status: res.status, type: res.headers.get("content-type") ?? "", body: text ? (JSON.parse(text) as Record<string, unknown>) : null, headers: res.headers };
    seen.push({ path: template, method: method.toLowerCase(), answer });
    return answer;
  }
  const token = async (user: SessionUser, scope: "read" | "operate" | "write" | "admin", extra: { teamId?: string; days?: number } = {}) =>
    (await createToken(db(), user, { name: `${scope} token`, scope, days: extra.days ?? 1, teamId: extra.teamId })).token;

  before(async () => {
    // A low rate, so the rate test below reaches it quickly; no other test makes that many requests with one token.
    // The agent runs in a network namespace of the test's: the networks made below are set up there.
    agentNamespace = namespaces.add("api");
    stack = await startTestStack({ webEnv: { GUESTHOUSE_API_RATE: String(RATE) }, agentNetns: agentNamespace });
    const host = await db().host.findUniqueOrThrow({ where: { name: "local" } });
    teamId = (await db().team.create({ data: { name: "Apis", nameKey: "apis" } })).id;
    const other = await db().team.create({ data: { name: "Elsewhere", nameKey: "elsewhere" } });
    const mk = (username: string, team: string) => db().user.create({ data: { username, usernameKey: username, passwordHash: "x", teamId: team, memberships: { create: { teamId: team, role: "member" } } } });
    const m = await mk("mia", teamId);
    const o = await mk("oz", other.id);
    mia = await sessionUser(db(), m.id);
    oz = await sessionUser(db(), o.id);
    guestId = (await db().guest.create({ data: { name: "api-guest", vcpus: 1, memoryMiB: 64, bootOrder: "disk", ownerId: m.id, teamId, hostId: host.id } })).id;
    otherGuestId = (await db().guest.create({ data: { name: "their-guest", vcpus: 1, memoryMiB: 64, ownerId: o.id, teamId: other.id, hostId: host.id } })).id;
    document = (await (await fetch(`${stack.baseUrl}/api/v1/openapi.json`)).json()) as typeof document;
    // The document's components as one schema, so their "#/components/schemas/…" references resolve inside it.
    ajv.addSchema({ $id: "openapi.json", components: document.components });
  });
  after(async () => {
    await stack?.cleanup();
    namespaces.cleanup();
  });

  test("no token, an unknown, a revoked and an expired one: 401 as problem+json, the same answer for each", async () => {
    const live = await token(mia, "read");
    const revoked = await token(mia, "read");
    await db().apiToken.update({ where: { id: hashSecret(revoked) }, data: { revokedAt: new Date() } });
    const expired = await token(mia, "read");
    await db().apiToken.update({ where: { id: hashSecret(expired) }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const details = new Set<string>();
    for (const t of [null, "gh_not-a-token", revoked, expired]) {
      const a = await call("GET", "/guests", { token: t ?? undefined });
      assert.equal(a.status, 401, String(t));
      assert.match(a.type, /^application\/problem\+json/);
      assert.equal(a.body?.code, "unauthenticated");
      if (t) details.add(String(a.body?.detail));
    }
    assert.equal(details.size, 1, "nothing tells a revoked token from an unknown one");
    assert.equal((await call("GET", "/guests", { token: live })).status, 200);
  });

  test("a member's token sees their team's guests; another team's guest is 404, like one that does not exist", async () => {
    const t = await token(mia, "read");
    const list = await call("GET", "/guests", { token: t });
    assert.deepEqual((list.body?.items as Array<{ name: string }>).map((g) => g.name), ["api-guest"]);
    const theirs = await call("GET", `/guests/${otherGuestId}`, { token: t }, "/guests/{id}");
    const none = await call("GET", "/guests/no-such-guest", { token: t }, "/guests/{id}");
    assert.deepEqual([theirs.status, theirs.body?.detail], [none.status, none.body?.detail]);
    assert.equal(theirs.status, 404);
    assert.equal((await call("GET", "/guests?pageSize=0", { token: t })).status, 400);
  });

  test("a guest has an ETag: 304 for If-None-Match while unchanged, a new one once it changes", async () => {
    const t = await token(mia, "read");
    const first = await call("GET", `/guests/${guestId}`, { token: t }, "/guests/{id}");
    const etag = first.headers.get("etag")!;
    assert.match(etag, /^"[\w-]{22}"$/);
    assert.equal((await call("GET", `/guests/${guestId}`, { token: t, headers: { "if-none-match": etag } }, "/guests/{id}")).status, 304);
    await db().guest.update({ where: { id: guestId }, data: { description: "changed" } });
    const changed = await call("GET", `/guests/${guestId}`, { token: t, headers: { "if-none-match": etag } }, "/guests/{id}");
    assert.equal(changed.status, 200);
    assert.notEqual(changed.headers.get("etag"), etag);
  });

  test("power through the API runs the same operation as the page: start runs QEMU, force-off stops it; a read token is refused for its scope", async () => {
    const read = await token(mia, "read");
    const refused = await call("POST", `/guests/${guestId}/power`, { token: read, body: { action: "start" } }, "/guests/{id}/power");
    assert.equal(refused.status, 403);
    assert.match(String(refused.body?.detail), /needs a token with the operate scope/);
    assert.equal((await stack.agent.client.guest(guestId)).state, "stopped");
    const operate = await token(mia, "operate");
    const started = await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "start" } }, "/guests/{id}/power");
    assert.deepEqual([started.status, started.body?.state], [200, "running"]);
    assert.equal((await stack.agent.client.guest(guestId)).state, "running");
    assert.equal(await db().event.count({ where: { kind: "start", guestId, ok: true } }), 1, "in the audit trail");
    const stopped = await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "force-off" } }, "/guests/{id}/power");
    assert.deepEqual([stopped.status, stopped.body?.state], [200, "stopped"]);
    const again = await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "pause" } }, "/guests/{id}/power");
    assert.equal(again.status, 409, "pausing a stopped guest");
    const theirs = await call("POST", `/guests/${otherGuestId}/power`, { token: operate, body: { action: "start" } }, "/guests/{id}/power");
    assert.equal(theirs.status, 404);
  });

  test("bodies: an unknown field, a wrong value, not JSON, not declared as JSON and over 1 MiB are refused, naming the field", async () => {
    const t = await token(mia, "operate");
    const path = `/guests/${guestId}/power`;
    const unknown = await call("POST", path, { token: t, body: { action: "start", force: true } }, "/guests/{id}/power");
    assert.deepEqual([unknown.status, unknown.body?.field], [400, "force"]);
    assert.match(String(unknown.body?.detail), /Unknown field: force/);
    const wrong = await call("POST", path, { token: t, body: { action: "explode" } }, "/guests/{id}/power");
    assert.deepEqual([wrong.status, wrong.body?.field], [400, "action"]);
    assert.equal((await call("POST", path, { token: t, raw: "{", headers: { "content-type": "application/json" } }, "/guests/{id}/power")).status, 400);
    assert.equal((await call("POST", path, { token: t, raw: '{"action":"start"}', headers: { "content-type": "text/plain" } }, "/guests/{id}/power")).status, 400);
    const big = await call("POST", path, { token: t, raw: JSON.stringify({ action: "start", pad: "x".repeat(1024 * 1024) }), headers: { "content-type": "application/json" } }, "/guests/{id}/power");
    assert.deepEqual([big.status, big.body?.code], [413, "too-large"]);
    assert.equal((await stack.agent.client.guest(guestId)).state, "stopped", "none of them started it");
  });

  test("the browser's session reads; its writes must come from this dashboard's Origin", async () => {
    const cookie = `${SESSION_COOKIE}=${(await createSession(db(), mia.id)).secret}`;
    assert.equal((await call("GET", "/guests", { cookie })).status, 200);
    const foreign = await call("POST", `/guests/${guestId}/power`, { cookie, origin: "https://evil.example", body: { action: "pause" } }, "/guests/{id}/power");
    assert.equal(foreign.status, 403);
    const none = await call("POST", `/guests/${guestId}/power`, { cookie, body: { action: "pause" } }, "/guests/{id}/power");
    assert.equal(none.status, 403);
    const own = await call("POST", `/guests/${guestId}/power`, { cookie, origin: stack.baseUrl, body: { action: "pause" } }, "/guests/{id}/power");
    assert.equal(own.status, 409, "through the Origin check to the state check");
  });

  test("tokens: made (shown once, stored hashed), listed with their last use, revoked at once; never above the token that makes them; limited to one team", async () => {
    const write = await token(mia, "write");
    const made = await call("POST", "/tokens", { token: write, body: { name: "ci", scope: "operate", days: 30 } });
    assert.equal(made.status, 201);
    const secret = String(made.body?.token);
    assert.match(secret, /^gh_[A-Za-z0-9_-]{43}$/);
    assert.equal(await db().apiToken.count({ where: { id: secret } }), 0, "the token itself is not stored");
    assert.equal(await db().apiToken.count({ where: { id: hashSecret(secret) } }), 1, "its hash is");
    assert.equal((await call("GET", "/guests", { token: secret })).status, 200);
    const listed = await call("GET", "/tokens", { token: write });
    const ci = (listed.body?.items as Array<{ id: string; name: string; lastUsedAt: string | null }>).find((x) => x.name === "ci")!;
    assert.ok(ci.lastUsedAt, "its last use is shown");
    assert.equal((await call("POST", "/tokens", { token: secret, body: { name: "more", scope: "admin", days: 1 } })).status, 403, "an operate token makes no admin token");
    assert.equal((await call("DELETE", `/tokens/${ci.id}`, { token: write }, "/tokens/{id}")).status, 204);
    assert.equal((await call("GET", "/guests", { token: secret })).status, 401, "revoked at once");
    assert.equal((await call("DELETE", `/tokens/${ci.id}`, { token: await token(oz, "write") }, "/tokens/{id}")).status, 404, "nobody else's to revoke");
    const other = await db().team.findUniqueOrThrow({ where: { nameKey: "elsewhere" } });
    await db().membership.create({ data: { userId: mia.id, teamId: other.id, role: "member" } });
    const limited = await token(await sessionUser(db(), mia.id), "read", { teamId });
    const seenByLimited = await call("GET", "/guests", { token: limited });
    assert.deepEqual((seenByLimited.body?.items as Array<{ name: string }>).map((g) => g.name), ["api-guest"], "not the other team's, though mia is in it now");
    await db().membership.deleteMany({ where: { userId: mia.id, teamId: other.id } });
  });

  test("a task: as it is at once, or waited for until it ends", async () => {
    const host = await db().host.findUniqueOrThrow({ where: { name: "local" } });
    await db().task.create({ data: { id: "web-api-wait", kind: "convert", title: "a conversion", state: "running", hostId: host.id, userId: mia.id, teamId } });
    const t = await token(mia, "read");
    assert.equal((await call("GET", "/tasks/web-api-wait", { token: t }, "/tasks/{id}")).body?.state, "running");
    const waiting = call("GET", "/tasks/web-api-wait?wait=20", { token: t }, "/tasks/{id}");
    await new Promise((r) => setTimeout(r, 300));
    await db().task.update({ where: { id: "web-api-wait" }, data: { state: "succeeded", progress: 1, finishedAt: new Date() } });
    const t0 = Date.now();
    const done = await waiting;
    assert.equal(done.body?.state, "succeeded");
    assert.ok(Date.now() - t0 < 5000, "answered soon after it ended, not at the end of the wait");
    assert.equal((await call("GET", "/tasks/web-api-wait", { token: await token(oz, "read") }, "/tasks/{id}")).status, 404);
    assert.equal((await call("GET", "/tasks/web-api-wait?wait=61", { token: t }, "/tasks/{id}")).status, 400);
  });

  test("guests: made from a definition (201, Location, ETag), exported back, changed only with a current If-Match (412 otherwise), made a template, cloned, deleted with their disks", async () => {
    const t = await token(mia, "write");
    const definition = { ...testDefinition("api-made", [1]), description: "made by the API", tags: ["ci"] };
    const made = await call("POST", "/guests", { token: t, body: definition });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = String(made.body?.id);
    assert.equal(made.headers.get("location"), `/api/v1/guests/${id}`);
    const [disk] = made.body?.disks as Array<{ id: string; file: string }>;
    assert.ok((await stack.agent.client.image({ pool: "default", file: disk!.file })).virtualBytes >= 2 ** 30, "its disk was made on the host");
    const exported = await call("GET", `/guests/${id}/definition`, { token: t }, "/guests/{id}/definition");
    assert.deepEqual(exported.body, definition, "exported as it was made");
    assert.equal((await call("POST", "/guests", { token: t, body: definition })).status, 409, "the name is taken");
    assert.deepEqual((await call("GET", "/guests?tag=ci", { token: t })).body?.total, 1);
    assert.deepEqual((await call("GET", "/guests?q=made&template=false", { token: t })).body?.total, 1);

    const etag = made.headers.get("etag")!;
    const hardware = { ...exported.body, disks: [{ id: disk!.id, bus: "virtio", cache: "none", readOnly: false }], nics: [] } as Record<string, unknown>;
    delete hardware.guesthouse;
    delete hardware.name;
    const changed = await call("PUT", `/guests/${id}/hardware`, { token: t, body: { ...hardware, memoryMiB: 96 }, headers: { "if-match": etag } }, "/guests/{id}/hardware");
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body?.memoryMiB, 96);
    assert.notEqual(changed.headers.get("etag"), etag);
    const stale = await call("PUT", `/guests/${id}/hardware`, { token: t, body: { ...hardware, memoryMiB: 128 }, headers: { "if-match": etag } }, "/guests/{id}/hardware");
    assert.deepEqual([stale.status, stale.body?.code], [412, "stale"]);
    assert.equal((await db().guest.findUniqueOrThrow({ where: { id } })).memoryMiB, 96, "the stale write changed nothing");
    assert.equal((await call("POST", `/guests/${id}/template`, { token: t, headers: { "if-match": etag } }, "/guests/{id}/template")).status, 412);
    const template = await call("POST", `/guests/${id}/template`, { token: t, headers: { "if-match": changed.headers.get("etag")! } }, "/guests/{id}/template");
    assert.deepEqual([template.status, template.body?.isTemplate], [200, true]);

    const clone = await call("POST", `/guests/${id}/clone`, { token: t, body: { name: "api-clone", mode: "linked" } }, "/guests/{id}/clone");
    assert.equal(clone.status, 201, JSON.stringify(clone.body));
    const cloneDisk = (clone.body?.disks as Array<{ file: string }>)[0]!;
    assert.equal((await call("DELETE", `/guests/${id}`, { token: t }, "/guests/{id}")).status, 409, "a template with linked clones stays");
    const gone = await call("DELETE", `/guests/${clone.body?.id}?disks=delete`, { token: t }, "/guests/{id}");
    assert.deepEqual(gone.body, { deletedDisks: 1, keptDisks: 0 });
    await assert.rejects(stack.agent.client.image({ pool: "default", file: cloneDisk.file }), /There is no image/, "its disk file is gone");
    const kept = await call("DELETE", `/guests/${id}`, { token: t }, "/guests/{id}");
    assert.deepEqual(kept.body, { deletedDisks: 0, keptDisks: 1 }, "without disks=delete the disks stay");
    assert.equal((await call("DELETE", `/guests/${id}`, { token: t }, "/guests/{id}")).status, 404);
  });

  test("disks: made, grown, snapshotted, checked, attached and detached, converted in the background (202 and its task waited for), deleted", async () => {
    const t = await token(mia, "write");
    const made = await call("POST", "/disks", { token: t, body: { pool: "default", file: "api-disk.qcow2", format: "qcow2", size: "64M" } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = String(made.body?.id);
    assert.equal(made.headers.get("location"), `/api/v1/disks/${id}`);
    const grown = await call("POST", `/disks/${id}/resize`, { token: t, body: { size: "128M", shrink: false } }, "/disks/{id}/resize");
    assert.equal(grown.body?.sizeBytes, 128 * 2 ** 20);
    const snapped = await call("POST", `/disks/${id}/snapshots`, { token: t, body: { op: "create", name: "before" } }, "/disks/{id}/snapshots");
    assert.equal(snapped.body?.snapshots, 1);
    const checked = await call("POST", `/disks/${id}/check`, { token: t }, "/disks/{id}/check");
    assert.equal(checked.body?.ok, true);
    const attached = await call("POST", `/disks/${id}/attach`, { token: t, body: { guestId, bus: "virtio" } }, "/disks/{id}/attach");
    assert.deepEqual(attached.body?.guest, { id: guestId, name: "api-guest" });
    assert.equal((await call("DELETE", `/disks/${id}`, { token: t }, "/disks/{id}")).status, 409, "not while attached");
    assert.equal((await call("POST", `/disks/${id}/detach`, { token: t }, "/disks/{id}/detach")).body?.guest, null);
    const converting = await call("POST", `/disks/${id}/convert`, { token: t, body: { file: "api-disk.raw", format: "raw" } }, "/disks/{id}/convert");
    assert.equal(converting.status, 202, JSON.stringify(converting.body));
    assert.equal(converting.headers.get("location"), `/api/v1/tasks/${converting.body?.id}`);
    const done = await call("GET", `/tasks/${converting.body?.id}?wait=60`, { token: t }, "/tasks/{id}");
    assert.equal(done.body?.state, "succeeded", JSON.stringify(done.body));
    const listed = await call("GET", "/disks", { token: t });
    const raw = (listed.body?.items as Array<{ id: string; file: string; state: string }>).find((d) => d.file === "api-disk.raw")!;
    assert.equal(raw.state, "ready");
    assert.ok((await call("GET", "/tasks", { token: t })).body?.items instanceof Array);
    assert.equal((await call("DELETE", `/disks/${id}`, { token: t }, "/disks/{id}")).status, 204);
    assert.equal((await call("DELETE", `/disks/${raw.id}`, { token: t }, "/disks/{id}")).status, 204);
    assert.equal((await call("GET", `/disks/${id}`, { token: t }, "/disks/{id}")).status, 404);
  });

  test("uploads with a token: resumable from the offset the API reports, refused for a read token, errors as problem+json", async () => {
    const write = await token(mia, "write");
    const read = await token(mia, "read");
    const bytes = randomBytes(3 * 2 ** 20);
    const url = `${stack.baseUrl}/api/v1/uploads/default/api-upload.raw`;
    const put = (t: string, from: number, to: number) =>
      fetch(`${url}?size=${bytes.length}&offset=${from}`, { method: "PUT", headers: { authorization: `Bearer ${t}`, "content-type": "application/octet-stream" }, body: bytes.subarray(from, to) });
    const refused = await put(read, 0, bytes.length);
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get("content-type") ?? "", /^application\/problem\+json/);
    assert.equal(((await refused.json()) as { code: string }).code, "forbidden");
    // The first megabyte only, then the connection breaks, as a flaky network would leave it.
    const broken = http.request(`${url}?size=${bytes.length}&offset=0`, {
      method: "PUT",
      headers: { authorization: `Bearer ${write}`, "content-type": "application/octet-stream", "content-length": String(bytes.length) },
    });
    broken.on("error", () => {});
    broken.write(bytes.subarray(0, 2 ** 20));
    await waitFor("the first megabyte to arrive", async () => ((await db().task.findFirst({ where: { kind: "upload", title: { contains: "api-upload.raw" } } }))?.progress ?? 0) > 0, 20_000);
    broken.destroy();
    const offsetOf = async () => ((await (await fetch(url, { headers: { authorization: `Bearer ${read}` } })).json()) as { offset: number; uploading: boolean });
    const state = await waitFor("the broken upload to be kept", async () => {
      const now = await offsetOf();
      return !now.uploading && now.offset > 0 ? now : null;
    }, 20_000);
    assert.ok(state.offset <= 2 ** 20, "no more than was sent");
    const rest = await put(write, state.offset, bytes.length);
    assert.equal(rest.status, 201, await rest.clone().text());
    const result = (await rest.json()) as { sha256: string; diskId: string };
    assert.equal(result.sha256, createHash("sha256").update(bytes).digest("hex"), "the whole file, resumed");
    assert.equal((await call("GET", `/disks/${result.diskId}`, { token: read }, "/disks/{id}")).body?.file, "api-upload.raw");
  });

  test("events: a guest started through the API is pushed as {id, state} to its team's stream, never to another team's; a revoked token's stream ends", async () => {
    const listen = async (t: string) => {
      const controller = new AbortController();
      const res = await fetch(`${stack.baseUrl}/api/v1/events`, { headers: { authorization: `Bearer ${t}` }, signal: controller.signal });
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      let text = "";
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      void (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            text += value;
          }
        } catch {
          // aborted
        }
      })();
      return { text: () => text, close: () => controller.abort() };
    };
    const miasToken = await token(mia, "read");
    const mine = await listen(miasToken);
    const theirs = await listen(await token(oz, "read"));
    await waitFor("both streams to open", () => mine.text().includes("retry:") && theirs.text().includes("retry:"), 10_000);
    const operate = await token(mia, "operate");
    assert.equal((await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "start" } }, "/guests/{id}/power")).status, 200);
    await waitFor("the start on mia's stream", () => mine.text().includes(`event: guest\ndata: ${JSON.stringify({ id: guestId, state: "running" })}`), 20_000);
    await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "force-off" } }, "/guests/{id}/power");
    await waitFor("the stop on mia's stream", () => mine.text().includes(`"state":"stopped"`), 20_000);
    assert.ok(!theirs.text().includes(guestId), "oz's stream never names mia's guest");
    await db().apiToken.update({ where: { id: hashSecret(miasToken) }, data: { revokedAt: new Date() } });
    await waitFor("the stream of a revoked token to end", () => mine.text().includes("event: ended"), 10_000);
    mine.close();
    theirs.close();
  });

  test("consoles: a ticket and a websocket URL that opens the guest's serial port; view-only links made, listed and revoked", async () => {
    const operate = await token(mia, "operate");
    const off = await call("POST", `/guests/${guestId}/console`, { token: operate, body: { kind: "serial" } }, "/guests/{id}/console");
    assert.equal(off.body?.status, "off", "no ticket while it is stopped");
    await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "start" } }, "/guests/{id}/power");
    const opening = await call("POST", `/guests/${guestId}/console`, { token: operate, body: { kind: "serial" } }, "/guests/{id}/console");
    assert.equal(opening.body?.status, "ticket");
    const wsUrl = String(opening.body?.url);
    assert.match(wsUrl, /^ws:\/\/.+\/ws\/serial\/.+\?ticket=/);
    const opens = (url: string, headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(url, { headers });
        ws.once("open", () => {
          ws.terminate();
          resolve(101);
        });
        ws.once("unexpected-response", (_req, res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        ws.once("error", reject);
      });
    assert.equal(await opens(wsUrl, {}), 403, "neither a token nor this dashboard's Origin");
    const again = await call("POST", `/guests/${guestId}/console`, { token: operate, body: { kind: "serial" } }, "/guests/{id}/console");
    assert.equal(await opens(String(again.body?.url), { authorization: `Bearer ${await token(oz, "operate")}` }), 403, "someone else's token");
    const third = await call("POST", `/guests/${guestId}/console`, { token: operate, body: { kind: "serial" } }, "/guests/{id}/console");
    assert.equal(await opens(String(third.body?.url), { authorization: `Bearer ${operate}` }), 101, "the URL opens the serial port with the token that asked for it");
    await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "force-off" } }, "/guests/{id}/power");
    const write = await token(mia, "write");
    const share = await call("POST", `/guests/${guestId}/shares`, { token: write, body: { duration: "1h", label: "for the demo" } }, "/guests/{id}/shares");
    assert.equal(share.status, 201);
    assert.match(String(share.body?.url), /\/share\/[A-Za-z0-9_-]{43}$/);
    const listed = await call("GET", `/guests/${guestId}/shares`, { token: write }, "/guests/{id}/shares");
    const link = (listed.body?.items as Array<{ id: string; label: string; state: string }>).find((l) => l.label === "for the demo")!;
    assert.equal(link.state, "active");
    assert.equal((await call("DELETE", `/guests/${guestId}/shares/${link.id}`, { token: write }, "/guests/{id}/shares/{shareId}")).status, 204);
    const after = await call("GET", `/guests/${guestId}/shares`, { token: write }, "/guests/{id}/shares");
    assert.equal((after.body?.items as Array<{ id: string; state: string }>).find((l) => l.id === link.id)?.state, "revoked");
  });

  test("admin resources: users for admins only; teams, roles; members added and removed; quotas set and read; thresholds read by members, set by admins, refused whole when bad; the audit trail filtered", async () => {
    const admin = await sessionUser(db(), (await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } })).id);
    const root = await token(admin, "admin");
    assert.equal((await call("GET", "/users", { token: await token(mia, "admin") })).status, 403, "a member's admin token is no admin");
    const users = await call("GET", "/users", { token: root });
    assert.ok((users.body?.items as Array<{ username: string }>).some((u) => u.username === "mia"));
    assert.deepEqual(((await call("GET", "/roles", { token: root })).body?.items as Array<{ role: string }>).map((r) => r.role), ["owner", "operator", "member", "viewer"]);
    assert.equal((await call("PUT", `/teams/${teamId}/members/oz`, { token: root, body: { role: "viewer" } }, "/teams/{id}/members/{username}")).status, 204);
    const teams = await call("GET", "/teams", { token: root });
    const apis = (teams.body?.items as Array<{ id: string; members: Array<{ username: string; role: string }> }>).find((x) => x.id === teamId)!;
    assert.deepEqual(apis.members.find((m) => m.username === "oz")?.role, "viewer");
    assert.equal((await call("PUT", `/teams/${teamId}/members/oz`, { token: root, body: { role: "emperor" } }, "/teams/{id}/members/{username}")).body?.field, "role");
    assert.equal((await call("DELETE", `/teams/${teamId}/members/oz`, { token: root }, "/teams/{id}/members/{username}")).status, 204);
    assert.equal(await db().membership.count({ where: { teamId, user: { username: "oz" } } }), 0);
    const set = await call("PUT", `/teams/${teamId}/quotas/diskBytes`, { token: root, body: { limit: "500G" } }, "/teams/{id}/quotas/{resource}");
    assert.deepEqual(set.body, { limit: 500 * 2 ** 30 });
    assert.equal((await call("PUT", `/teams/${teamId}/quotas/diskBytes`, { token: root, body: { limit: "lots" } }, "/teams/{id}/quotas/{resource}")).status, 400);
    const seen = await call("GET", "/quotas", { token: await token(mia, "read") });
    const disk = (seen.body?.items as Array<{ id: string; resources: Array<{ resource: string; limit: number | null }> }>).find((x) => x.id === teamId)!.resources.find((r) => r.resource === "diskBytes");
    assert.equal(disk?.limit, 500 * 2 ** 30, "the member sees the limit set");
    await call("PUT", `/teams/${teamId}/quotas/diskBytes`, { token: root, body: { limit: null } }, "/teams/{id}/quotas/{resource}");
    // Thresholds: the defaults until set; set by admins and owners only, every kind at once; a member reads them, another team's does not.
    const T = "/teams/{id}/thresholds";
    const defaults = { "guest-cpu": { percent: 90, minutes: 10 }, "guest-memory": { percent: 90, minutes: 10 }, "folder-space": { percent: 90 } };
    assert.deepEqual((await call("GET", `/teams/${teamId}/thresholds`, { token: await token(mia, "read") }, T)).body, defaults);
    const wanted = { "guest-cpu": { percent: 75, minutes: 5 }, "guest-memory": { percent: 95, minutes: 30 }, "folder-space": { percent: 80 } };
    assert.equal((await call("PUT", `/teams/${teamId}/thresholds`, { token: await token(mia, "admin"), body: wanted }, T)).status, 403, "a member sets none");
    const bad = await call("PUT", `/teams/${teamId}/thresholds`, { token: root, body: { ...wanted, "guest-cpu": { percent: 101, minutes: 5 } } }, T);
    assert.deepEqual([bad.status, bad.body?.field], [400, "guest-cpu.percent"], JSON.stringify(bad.body));
    assert.equal((await call("PUT", `/teams/${teamId}/thresholds`, { token: root, body: { "guest-cpu": wanted["guest-cpu"] } }, T)).status, 400, "every kind at once");
    assert.equal(await db().metricThreshold.count({ where: { teamId } }), 0, "nothing was kept of the refusals");
    const setThresholds = await call("PUT", `/teams/${teamId}/thresholds`, { token: root, body: wanted }, T);
    assert.deepEqual([setThresholds.status, setThresholds.body], [200, wanted]);
    assert.deepEqual((await call("GET", `/teams/${teamId}/thresholds`, { token: await token(mia, "read") }, T)).body, wanted);
    assert.equal((await call("GET", `/teams/${teamId}/thresholds`, { token: await token(oz, "read") }, T)).status, 404, "another team's member");
    assert.equal((await call("PUT", "/teams/no-such-team/thresholds", { token: root, body: wanted }, T)).status, 404);
    const audit = await call("GET", "/audit?action=team-role&limit=5", { token: root });
    assert.ok((audit.body?.items as Array<{ action: string; message: string }>).some((e) => e.action === "team-role" && /oz a viewer/.test(e.message)), "the API's changes are in the trail");
    const trail = await call("GET", "/audit?action=team-thresholds&limit=5", { token: root });
    assert.ok((trail.body?.items as Array<{ message: string }>).some((e) => /CPU 75 % for 5 min, memory 95 % for 30 min, storage 80 %/.test(e.message)), "thresholds set are in the trail");
    assert.equal((await call("GET", "/audit?from=yesterday", { token: root })).body?.field, "from");
    assert.equal((await call("GET", "/audit?color=red", { token: root })).body?.field, "color", "an unknown query parameter is named");
  });

  test("a token past its rate gets 429 with Retry-After, and another token is not slowed by it", async () => {
    const busy = await token(mia, "read");
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 2 * RATE }, () => call("GET", "/roles", { token: busy })));
    // A minute's worth at once, and what the bucket refilled meanwhile (RATE a minute): no more.
    const most = RATE + Math.ceil(((Date.now() - t0) / 60_000) * RATE) + 1;
    const limited = answers.filter((a) => a.status === 429);
    assert.ok(answers.length - limited.length <= most, `${answers.length - limited.length} of ${answers.length} got through, ${most} at most`);
    assert.ok(answers.length - limited.length >= RATE, "a minute's worth gets through at once");
    assert.equal(answers.filter((a) => a.status === 200).length + limited.length, answers.length);
    const retry = Number(limited[0]!.headers.get("retry-after"));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After: ${retry}`);
    assert.equal(limited[0]!.body?.code, "busy");
    assert.equal((await call("GET", "/roles", { token: await token(mia, "read") })).status, 200, "a fresh token has its own rate");
  });

  test("networks: made on the host, listed, shown with an ETag; rules replaced under If-Match (412 when stale); addresses and counters; hidden from another team; removed", async () => {
    const t = await token(mia, "write");
    const made = await call("POST", "/networks", { token: t, body: { name: "lab", kind: "nat", subnet: "10.66.0.0/24", dhcp: "auto", domain: "lab.internal" } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = String(made.body?.id);
    assert.equal(made.headers.get("location"), `/api/v1/networks/${id}`);
    assert.deepEqual((await stack.agent.client.networks()).map((n) => n.id), [id], "set up on the host");
    const bad = await call("POST", "/networks", { token: t, body: { name: "lab2", kind: "nat", subnet: "10.66.0.0/25", dhcp: "auto", domain: "lab.internal" } });
    assert.deepEqual([bad.status, bad.body?.code], [409, "conflict"]);
    assert.equal((await call("POST", "/networks", { token: t, body: { name: "lab3", kind: "nat", subnet: "10.67.0.0/24", dhcp: "auto", domain: "lab.internal", extra: 1 } })).status, 400, "unknown fields are refused");
    const list = await call("GET", "/networks", { token: t });
    const items = list.body?.items as Array<{ name: string; teamId: string }>;
    assert.ok(items.some((n) => n.name === "lab"));
    assert.ok(items.every((n) => n.teamId === teamId), "only the caller's team's networks");
    const shown = await call("GET", `/networks/${id}`, { token: t }, "/networks/{id}");
    const etag = shown.headers.get("etag")!;
    assert.equal(etag, `"${String(shown.body?.updatedAt)}"`);
    const rules = { forwards: [], firewall: { defaultIn: "deny", defaultOut: "allow", rules: [{ id: "ssh", action: "deny", direction: "in", protocol: "tcp", ports: { from: 22, to: 22 }, cidr: "192.168.0.0/16", mac: null, comment: "" }] } };
    const put = await call("PUT", `/networks/${id}/rules`, { token: t, body: rules, headers: { "if-match": etag } }, "/networks/{id}/rules");
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.notEqual(put.headers.get("etag"), etag);
    const stale = await call("PUT", `/networks/${id}/rules`, { token: t, body: { ...rules, firewall: { ...rules.firewall, rules: [] } }, headers: { "if-match": etag } }, "/networks/{id}/rules");
    assert.deepEqual([stale.status, stale.body?.code], [412, "stale"]);
    const counters = await call("GET", `/networks/${id}/counters`, { token: t }, "/networks/{id}/counters");
    assert.deepEqual(Object.keys(counters.body?.rules as object), ["ssh"]);
    const addresses = await call("GET", `/networks/${id}/addresses`, { token: t }, "/networks/{id}/addresses");
    assert.deepEqual((addresses.body?.rows as Array<{ ip: string; use: string }>)[0], { ip: "10.66.0.1", use: "gateway", mac: null, holder: "this host", expires: null });
    const test = await call("POST", `/networks/${id}/forwards/test`, { token: t, body: { protocol: "tcp", hostPort: 20001 } }, "/networks/{id}/forwards/test");
    assert.deepEqual([test.status, test.body?.code], [400, "invalid-input"], "no such forward");
    const theirs = await call("GET", `/networks/${id}`, { token: await token(oz, "read") }, "/networks/{id}");
    const none = await call("GET", "/networks/no-such-network", { token: await token(oz, "read") }, "/networks/{id}");
    assert.deepEqual([theirs.status, theirs.body?.detail], [none.status, none.body?.detail]);
    assert.equal((await call("DELETE", `/networks/${id}`, { token: await token(mia, "read") }, "/networks/{id}")).status, 403, "a read token removes nothing");
    const link = await call("POST", `/guests/${guestId}/nics/0/link`, { token: t, body: { up: false } }, "/guests/{id}/nics/{index}/link");
    assert.equal(link.status, 404, "the guest has no card");
    assert.equal((await call("DELETE", `/networks/${id}`, { token: t }, "/networks/{id}")).status, 204);
    assert.deepEqual(await stack.agent.client.networks(), [], "gone from the host");
  });

  test("metrics: a running guest's history, live samples and counters to its team, 404 to another's; top consumers and the list's figures per caller; the host's to admins only; ranges and sorts checked", { timeout: 120_000 }, async () => {
    const read = await token(mia, "read");
    const theirs = await token(oz, "read");
    const hostId = (await db().host.findUniqueOrThrow({ where: { name: "local" } })).id;
    const adminRow = await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const admin = await sessionUser(db(), adminRow.id);
    const g = (suffix: string) => `/guests/${guestId}/metrics${suffix}`;
    const template = (suffix: string) => `/guests/{id}/metrics${suffix.split("?")[0]}`;

    const bad = await call("GET", g("?range=decade"), { token: read }, template(""));
    assert.deepEqual([bad.status, bad.body?.code, bad.body?.field], [400, "invalid-input", "range"]);
    assert.match(String(bad.body?.detail), /range must be one of hour, day, week, month, year/);
    assert.equal((await call("GET", g("?range=hour&range=day"), { token: read }, template(""))).status, 400, "a parameter twice");
    assert.equal((await call("GET", g("/current"), { token: read }, template("/current"))).status, 409, "no counters while it is stopped");
    assert.equal((await call("GET", g("/live?after=0"), { token: read }, template("/live"))).status, 409);

    const operate = await token(mia, "operate");
    await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "start" } }, "/guests/{id}/power");
    try {
      const live = await waitFor("a live sample", async () => {
        const a = await call("GET", g("/live?after=0"), { token: read }, template("/live"));
        return a.status === 200 && (a.body?.items as unknown[]).length > 0 ? a : null;
      }, 60_000, 500);
      const [first] = live.body?.items as Array<{ at: number; sample: Record<string, number | null> }>;
      assert.ok(first!.at > Date.now() - 120_000 && "cpu" in first!.sample && "psiIo" in first!.sample);
      const current = await waitFor("the guest's counters", async () => {
        const a = await call("GET", g("/current"), { token: read }, template("/current"));
        return a.status === 200 ? a : null;
      }, 60_000, 500);
      assert.equal((current.body?.vcpuSeconds as number[]).length, 1);
      assert.equal(current.body?.memory, 64 * 2 ** 20);
      const history = await call("GET", g("?range=hour"), { token: read }, template(""));
      assert.equal(history.status, 200);
      assert.equal(history.body?.resolution, 10);
      assert.ok(Array.isArray(history.body?.t) && "cpu" in (history.body?.fields as object));
      assert.equal((await call("GET", g("?range=year"), { token: read }, template(""))).body?.resolution, 3600);

      // Another team's member: the guest is not there, as one that does not exist is not.
      const hidden = await call("GET", g("?range=hour"), { token: theirs }, template(""));
      const none = await call("GET", "/guests/no-such-guest/metrics", { token: theirs }, "/guests/{id}/metrics");
      assert.deepEqual([hidden.status, hidden.body?.detail], [none.status, none.body?.detail]);
      assert.equal((await call("GET", g("/live"), { token: theirs }, template("/live"))).status, 404);
      assert.equal((await call("GET", g("/current"), { token: theirs }, template("/current"))).status, 404);

      const top = await call("GET", "/metrics/top?sort=rss&window=now", { token: read }, "/metrics/top");
      const mine = (top.body?.items as Array<{ id: string; running: boolean; figures: Record<string, number | null> }>).find((r) => r.id === guestId);
      assert.ok(mine?.running && (mine.figures.rss ?? 0) > 0, JSON.stringify(mine));
      const topTheirs = await call("GET", "/metrics/top", { token: theirs }, "/metrics/top");
      const theirIds = (topTheirs.body?.items as Array<{ id: string }>).map((r) => r.id);
      assert.ok(theirIds.includes(otherGuestId) && !theirIds.includes(guestId), "their own team's guests only");
      assert.equal((await call("GET", "/metrics/top?window=hour", { token: read }, "/metrics/top")).status, 200);
      const badSort = await call("GET", "/metrics/top?sort=speed", { token: read }, "/metrics/top");
      assert.deepEqual([badSort.status, badSort.body?.field], [400, "sort"]);

      const figures = await call("GET", `/metrics/guests?ids=${guestId},${otherGuestId}`, { token: read }, "/metrics/guests");
      assert.deepEqual((figures.body?.items as Array<{ id: string }>).map((f) => f.id), [guestId]);
      const figuresTheirs = await call("GET", `/metrics/guests?ids=${guestId}`, { token: theirs }, "/metrics/guests");
      assert.deepEqual(figuresTheirs.body?.items, []);
      assert.equal((await call("GET", "/metrics/guests?ids=a,,b", { token: read }, "/metrics/guests")).status, 400);

      // The host's: admins only (a read token of theirs is enough: it changes nothing).
      const hostFor = async (t: string) => (await call("GET", `/hosts/${hostId}/metrics/current`, { token: t }, "/hosts/{id}/metrics/current")).status;
      assert.equal(await hostFor(read), 403);
      assert.equal(await hostFor(await token(mia, "admin")), 403, "a member's admin-scope token");
      const adminToken = await token(admin, "read");
      const hostNow = await call("GET", `/hosts/${hostId}/metrics/current`, { token: adminToken }, "/hosts/{id}/metrics/current");
      assert.equal(hostNow.status, 200);
      assert.ok((hostNow.body?.cores as number) >= 1 && Array.isArray(hostNow.body?.folders) && Array.isArray(hostNow.body?.alerts));
      assert.equal((await call("GET", `/hosts/${hostId}/metrics?range=week`, { token: adminToken }, "/hosts/{id}/metrics")).body?.resolution, 60);
      assert.equal((await call("GET", "/hosts/no-such-host/metrics", { token: adminToken }, "/hosts/{id}/metrics")).status, 404);
      assert.equal((await call("GET", `/hosts/${hostId}/metrics`, { token: read }, "/hosts/{id}/metrics")).status, 403);
    } finally {
      await call("POST", `/guests/${guestId}/power`, { token: operate, body: { action: "force-off" } }, "/guests/{id}/power");
    }
  });

  test("every route file under app/api/v1 serves exactly the operations the endpoint table (and so the document) lists for its path", () => {
    const served = appEntries("app/api/v1").flatMap((e) =>
      e.methods.map((m) => `${m} ${`/${path.dirname(path.relative("api/v1", e.file))}`.replace(/\[(\w+)\]/g, "{$1}").replace(/\/\.?$/, "")}`),
    );
    const listed = Object.values(ENDPOINTS as Record<string, Endpoint>)
      .filter((e) => !e.streamed)
      .map((e) => `${e.method} ${e.path}`);
    assert.deepEqual(served.sort(), listed.sort());
    // Each listed operation is in the document served, with its method.
    for (const e of Object.values(ENDPOINTS as Record<string, Endpoint>)) assert.ok(document.paths[e.path]?.[e.method.toLowerCase()], `${e.method} ${e.path} in the document`);
  });

  test("every answer above matches the OpenAPI document the server serves", async () => {
    assert.ok(seen.length > 30, `the tests above gave ${seen.length} answers to check`);
    // The check can fail: a list without its total, or with a field the document lacks, does not pass.
    const list = ajv.compile({ $ref: "openapi.json#/components/schemas/GuestList" });
    assert.equal(list({ items: [], page: 1, pageSize: 100 }), false);
    assert.equal(list({ items: [], page: 1, pageSize: 100, total: 0, extra: true }), false);
    assert.equal(list({ items: [], page: 1, pageSize: 100, total: 0 }), true);
    const problems: string[] = [];
    for (const { path, method, answer } of seen) {
      const operation = document.paths[path.split("?")[0]!]?.[method];
      assert.ok(operation, `${method} ${path} is in the document`);
      const response = operation.responses[String(answer.status)];
      if (!response) {
        problems.push(`${method} ${path}: ${answer.status} is not documented`);
        continue;
      }
      if (answer.status === 204 || answer.status === 304) continue;
      const [type, media] = Object.entries(response.content ?? {})[0] ?? [];
      assert.ok(type && media, `${method} ${path} ${answer.status} documents a body`);
      if (!answer.type.startsWith(type)) problems.push(`${method} ${path} ${answer.status}: ${answer.type}, documented ${type}`);
      const validate = ajv.compile({ $ref: `openapi.json${(media.schema as { $ref: string }).$ref}` });
      if (!validate(answer.body)) problems.push(`${method} ${path} ${answer.status}: ${ajv.errorsText(validate.errors)}`);
    }
    assert.deepEqual(problems, []);
  });
});
