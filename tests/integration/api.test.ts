/**
 * The REST API (`/api/v1`) on the real web server with a real agent and database: tokens
 * (unknown, revoked, expired, scoped, limited to a team), what another team's caller is
 * told, ETags, power actions starting real QEMU, bodies refused with the field at fault,
 * the browser's session and its Origin, waiting for a task, and every answer checked
 * against the OpenAPI document the server serves.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Ajv2020 from "ajv/dist/2020";
import { createToken } from "../../server/auth/api-tokens";
import { createSession, SESSION_COOKIE, type SessionUser } from "../../server/auth/sessions";
import { hashSecret } from "../../server/auth/tokens";
import { sessionUser } from "../helpers/db";
import { startTestStack, type TestStack } from "../helpers/web";

interface Answer {
  status: number;
  type: string;
  body: Record<string, unknown> | null;
  headers: Headers;
}

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
    stack = await startTestStack();
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
    assert.match(String(refused.body?.detail), /see it, not operate it/);
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
