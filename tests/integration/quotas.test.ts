/**
 * Quotas (server/web/quotas.ts, quota-admin.ts) against a real agent and a real database,
 * driven through the same operations the server actions run: 20 changes fired at once at
 * a nearly full quota never take it past its limit (new guests, starts of real QEMU
 * guests, new disks, resizes, uploads through the web's upload handler); refusals name
 * the quota, its use and its limit; per-member limits; snapshots; ISOs private to their
 * team; requests for more answered by an admin; bad limits refused.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { createSession, SESSION_COOKIE, type SessionUser } from "../../server/auth/sessions";
import type { QuotaResource } from "../../server/domain/types";
import { killQemusUnder, startTestAgent, type TestAgent } from "../helpers/agent";
import { createTestDb, sessionUser, useAsProcessDatabase, type TestDb } from "../helpers/db";
import { testDefinition } from "../helpers/specs";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe("quotas", () => {
  let agent: TestAgent;
  let database: TestDb;
  let uploadServer: http.Server;
  let quotas: typeof import("../../server/web/quotas");
  let admin: typeof import("../../server/web/quota-admin");
  let diskOps: typeof import("../../server/web/disk-ops");
  let factory: typeof import("../../server/web/guest-factory");
  let power: typeof import("../../server/web/power");
  let isos: typeof import("../../server/web/isos");
  let host: { id: string; endpoint: string };
  let teamId = "";
  let otherTeamId = "";
  let mia: SessionUser; // a member of the team
  let ada: SessionUser; // an admin
  let oz: SessionUser; // a member of another team
  let miaCookie = "";
  const db = () => database.db;
  const overQuota = (resource: QuotaResource, message?: RegExp) => (err: Error & { code?: string; refusal?: { resource: string } }) =>
    err.code === "over-quota" && err.refusal?.resource === resource && (!message || message.test(err.message));

  const definition = (name: string, disks: number[] = []) => testDefinition(name, disks, { memoryMiB: 32 });
  const limit = (resource: QuotaResource, amount: number | bigint, userId = "") =>
    db().quota.upsert({
      where: { teamId_userId_resource: { teamId, userId, resource } },
      create: { teamId, userId, resource, limit: BigInt(amount) },
      update: { limit: BigInt(amount) },
    });
  const usage = (resource: QuotaResource, userId: string | null = null) => quotas.usagesIn(db(), teamId, userId ?? "").then((u) => (userId ? u.user : u.team)[resource]);
  /** Settles every promise; returns how many were fulfilled, failing on any refusal that is not `isQuota`. */
  async function settle(promises: Array<Promise<unknown>>, isQuota: (err: Error & { code?: string }) => boolean): Promise<number> {
    const results = await Promise.allSettled(promises);
    for (const r of results) if (r.status === "rejected") assert.ok(isQuota(r.reason as Error & { code?: string }), `an unexpected failure: ${String((r.reason as Error).stack ?? r.reason)}`);
    return results.filter((r) => r.status === "fulfilled").length;
  }

  function put(file: string, data: Buffer): Promise<{ status: number; json: Record<string, unknown> }> {
    const { port } = uploadServer.address() as AddressInfo;
    return new Promise((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "PUT", path: `/upload/${file.endsWith(".iso") ? "isos" : "default"}/${file}?size=${data.length}`, headers: { cookie: miaCookie, origin: `http://127.0.0.1:${port}`, "content-length": String(data.length) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown> }));
      });
      req.on("error", reject);
      req.end(data);
    });
  }

  before(async () => {
    agent = await startTestAgent();
    database = await createTestDb();
    useAsProcessDatabase(database);
    quotas = await import("../../server/web/quotas");
    admin = await import("../../server/web/quota-admin");
    diskOps = await import("../../server/web/disk-ops");
    factory = await import("../../server/web/guest-factory");
    power = await import("../../server/web/power");
    isos = await import("../../server/web/isos");
    const { handleUpload } = await import("../../server/web/uploads");
    const team = await db().team.create({ data: { name: "Q" } });
    const other = await db().team.create({ data: { name: "Other" } });
    teamId = team.id;
    otherTeamId = other.id;
    const row = await db().host.create({ data: { name: "local", endpoint: `unix:${agent.socketPath}` } });
    host = { id: row.id, endpoint: row.endpoint };
    const mk = (username: string, role: string, team: string, hostRole = "member") =>
      db().user.create({ data: { username, usernameKey: username, passwordHash: "x", role: hostRole, teamId: team, memberships: { create: { teamId: team, role } } } });
    const m = await mk("mia", "member", teamId);
    mia = await sessionUser(db(), m.id);
    ada = await sessionUser(db(), (await mk("ada", "owner", teamId, "admin")).id);
    oz = await sessionUser(db(), (await mk("oz", "member", otherTeamId)).id);
    miaCookie = `${SESSION_COOKIE}=${(await createSession(db(), m.id)).secret}`;
    uploadServer = http.createServer((req, res) => handleUpload(req, res));
    await new Promise<void>((resolve) => uploadServer.listen(0, "127.0.0.1", resolve));
  });
  after(async () => {
    uploadServer?.close();
    if (agent) await killQemusUnder(agent.dataDir);
    await agent?.cleanup();
    await database?.cleanup();
  });

  test("20 new guests at once with room for 2: exactly 2 are made, the other 18 refused naming the quota, its use and its limit", async () => {
    for (let i = 0; i < 3; i++) await factory.makeGuest(mia, host, definition(`before-${i}`));
    await limit("guests", 5);
    const made = await settle(
      Array.from({ length: 20 }, (_, i) => factory.makeGuest(mia, host, definition(`rush-${i}`))),
      overQuota("guests", /^Your team's quota of guests is 5: 5 are in use and this needs 1 more\./),
    );
    assert.equal(made, 2);
    assert.equal(await db().guest.count({ where: { teamId } }), 5);
    assert.equal(await db().quotaHold.count(), 0, "no hold is left behind");
  });

  test("20 new disks, resizes and guests with disks at once, with room for 3 GiB: exactly 3 GiB more are taken, never more", async () => {
    await db().quota.deleteMany({ where: { teamId, resource: "guests" } });
    const small = [];
    for (let i = 0; i < 7; i++) small.push(await diskOps.createDisk(mia, { pool: "default", file: `grow-${i}.qcow2`, format: "qcow2", size: "1G", encrypt: false, passphrase: "" }));
    const used = await usage("diskBytes");
    await limit("diskBytes", used + 3 * GiB);
    const changes = [
      ...Array.from({ length: 7 }, (_, i) => diskOps.createDisk(mia, { pool: "default", file: `rush-${i}.qcow2`, format: "qcow2", size: "1G", encrypt: false, passphrase: "" })),
      ...small.map((d) => diskOps.resizeDisk(mia, d.id, { size: "2G", shrink: false })),
      ...Array.from({ length: 6 }, (_, i) => factory.makeGuest(mia, host, definition(`with-disk-${i}`, [1]))),
    ];
    assert.equal(changes.length, 20);
    const done = await settle(changes, overQuota("diskBytes", /quota of disk space \(virtual sizes\) is/));
    assert.equal(done, 3);
    assert.equal(await usage("diskBytes"), used + 3 * GiB);
    // The files agree with the rows: every refused create left no file, every refused resize its size.
    const images = await agent.client.images((await db().disk.findMany({ where: { teamId } })).map((d) => ({ pool: d.pool, file: d.file, format: d.format as "qcow2" })));
    const sizes = images.reduce((sum, i) => sum + ("virtualBytes" in i ? i.virtualBytes : 0), 0);
    assert.equal(sizes, used + 3 * GiB);
    assert.equal((await agent.client.images([])).filter((i) => i.file.startsWith("rush-")).length, (await db().disk.count({ where: { file: { startsWith: "rush-" } } })));
  });

  test("20 starts of real guests at once with room for 2 vCPUs: exactly 2 run; stopping one frees its vCPU", async () => {
    await db().quota.deleteMany({ where: { teamId } });
    const guests = [];
    for (let i = 0; i < 20; i++) guests.push(await factory.makeGuest(mia, host, definition(`runner-${i}`)));
    await limit("vcpus", 2);
    const started = await settle(
      guests.map((g) => power.powerGuest(mia, g.id, "start")),
      overQuota("vcpus", /^Your team's quota of vCPUs of running guests is 2: 2 are in use and this needs 1 more\./),
    );
    assert.equal(started, 2);
    const running = (await agent.client.guests()).filter((s) => s.state !== "stopped");
    assert.equal(running.length, 2, "QEMU runs for the two, and no other");
    assert.equal(await usage("vcpus"), 2);
    await power.powerGuest(mia, running[0]!.id, "force-off");
    assert.equal(await usage("vcpus"), 1, "a guest forced off stops counting at once");
    const waiting = guests.find((g) => !running.some((r) => r.id === g.id))!;
    assert.equal(await power.powerGuest(mia, waiting.id, "start"), "running");
    await power.powerGuest(mia, waiting.id, "force-off");
    await power.powerGuest(mia, running[1]!.id, "force-off");
  });

  test("memory of running guests: a start that would pass it is refused before QEMU runs", async () => {
    await db().quota.deleteMany({ where: { teamId } });
    const first = await factory.makeGuest(mia, host, definition("memory-1"));
    const second = await factory.makeGuest(mia, host, definition("memory-2"));
    await limit("memoryMiB", 48);
    await power.powerGuest(mia, first.id, "start");
    await assert.rejects(power.powerGuest(mia, second.id, "start"), overQuota("memoryMiB", /quota of memory of running guests is 48 MiB: 32 MiB are in use and this needs 32 MiB more/));
    assert.equal((await agent.client.guest(second.id)).state, "stopped");
    await power.powerGuest(mia, first.id, "force-off");
    assert.equal(await usage("memoryMiB"), 0);
  });

  test("20 uploads at once with room for 3 MiB: 3 arrive and become disks, 17 are refused before a byte is written", async () => {
    await db().quota.deleteMany({ where: { teamId } });
    const used = await usage("diskBytes");
    await limit("diskBytes", used + 3 * MiB);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => put(`up-${i}.raw`, randomBytes(MiB))));
    const ok = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status === 403);
    assert.equal(ok.length, 3, JSON.stringify(answers.filter((a) => a.status !== 201 && a.status !== 403)));
    assert.equal(refused.length, 17);
    for (const r of refused) {
      assert.equal(r.json.code, "over-quota");
      assert.deepEqual({ ...(r.json.quota as object), teamId: "-" }, { teamId: "-", resource: "diskBytes", scope: "team", used: used + 3 * MiB, limit: used + 3 * MiB, asked: MiB });
    }
    assert.equal(await usage("diskBytes"), used + 3 * MiB);
    const files = (await agent.client.images([])).filter((i) => i.file.startsWith("up-"));
    assert.equal(files.length, 3, "refused uploads wrote nothing");
    assert.equal(await db().quotaHold.count(), 0);
    assert.equal(await db().task.count({ where: { kind: "upload", state: "running" } }), 0);
  });

  test("an image whose virtual size passes the quota is refused when it arrives, and removed", async () => {
    const used = await usage("diskBytes");
    await limit("diskBytes", used + 10 * MiB);
    // A 2 MiB qcow2 file that says it is a 1 GiB disk.
    const made = await agent.client.createImage({ pool: "default", file: "scratch-big.qcow2", format: "qcow2", bytes: GiB, volume: "scratchbig01" });
    assert.ok(made.virtualBytes === GiB);
    const fs = await import("node:fs");
    const path = await import("node:path");
    const bytes = fs.readFileSync(path.join(agent.dataDir, "disks", "scratch-big.qcow2"));
    await agent.client.deleteImage({ pool: "default", file: "scratch-big.qcow2" });
    const answer = await put("liar.qcow2", bytes);
    assert.equal(answer.status, 403, JSON.stringify(answer.json));
    assert.match(String(answer.json.error), /quota of disk space .* The uploaded file was removed\./);
    assert.equal((await agent.client.images([])).filter((i) => i.file === "liar.qcow2").length, 0);
    assert.equal(await usage("diskBytes"), used);
  });

  test("a member's own limit within the team: theirs refuses first, and says so", async () => {
    await db().quota.deleteMany({ where: { teamId } });
    const mine = await db().guest.count({ where: { teamId, ownerId: mia.id } });
    await limit("guests", mine, mia.id);
    await assert.rejects(factory.makeGuest(mia, host, definition("one-too-many")), overQuota("guests", /^Your own quota of guests is/));
    await factory.makeGuest(ada, host, definition("admins-guest"));
    assert.equal(await db().guest.count({ where: { name: "admins-guest" } }), 1, "the team has room: another member is not held by mia's limit");
  });

  test("snapshots count: one over the limit is refused; deleting one frees it", async () => {
    await db().quota.deleteMany({ where: { teamId } });
    const disk = await diskOps.createDisk(mia, { pool: "default", file: "snappy.qcow2", format: "qcow2", size: "64M", encrypt: false, passphrase: "" });
    const taken = await usage("snapshots");
    await limit("snapshots", taken + 1);
    await diskOps.snapshotDisk(mia, disk.id, { op: "create", name: "first" });
    await assert.rejects(diskOps.snapshotDisk(mia, disk.id, { op: "create", name: "second" }), overQuota("snapshots"));
    assert.equal((await db().disk.findUniqueOrThrow({ where: { id: disk.id } })).snapshotCount, 1);
    await diskOps.snapshotDisk(mia, disk.id, { op: "delete", name: "first" });
    await diskOps.snapshotDisk(mia, disk.id, { op: "create", name: "second" });
    assert.equal(await usage("snapshots"), taken + 1);
  });

  test("ISOs: an upload is its team's alone until an admin publishes it; ISO space is a quota", async () => {
    await db().quota.deleteMany({ where: { teamId } });
    const iso = randomBytes(MiB);
    assert.equal((await put("team.iso", iso)).status, 201);
    assert.deepEqual((await isos.isosFor(mia, host, teamId))?.find((i) => i.name === "team.iso")?.uploader, "mia");
    assert.equal((await isos.isosFor(oz, host, otherTeamId))?.some((i) => i.name === "team.iso"), false, "another team does not see it");
    await assert.rejects(factory.makeGuest(oz, host, { ...definition("oz-guest"), cdroms: [{ iso: "team.iso" }] }), /The ISO "team.iso" is not in the host's image folder/);
    await assert.rejects(isos.publishIso(mia, host, "team.iso", true), /Only admins publish/);
    await isos.publishIso(ada, host, "team.iso", true);
    assert.equal((await isos.isosFor(oz, host, otherTeamId))?.some((i) => i.name === "team.iso"), true);
    await assert.rejects(isos.removeIso(oz, host, "team.iso"), (err: Error & { code?: string }) => err.code === "forbidden");
    await limit("isoBytes", (await usage("isoBytes")) + MiB / 2);
    const answer = await put("second.iso", iso);
    assert.equal(answer.status, 403);
    assert.match(String(answer.json.error), /quota of ISO space/);
    await assert.rejects(isos.removeIso(mia, host, "team.iso"), /Only admins delete the ISOs every team shares/, "published, other teams may use it");
    await isos.publishIso(ada, host, "team.iso", false);
    await isos.removeIso(mia, host, "team.iso");
    assert.equal(await usage("isoBytes"), 0, "its uploader deleted it");
  });

  test("asking for more: the member asks, the admin approves and the limit changes; a decline needs a note; an answer is given once", async () => {
    await db().quota.deleteMany({ where: { teamId } });
    await limit("vcpus", 4);
    await assert.rejects(admin.askForMore(mia, { teamId, resource: "vcpus", scope: "team", amount: "4", reason: "more builds" }), /ask for more than that/);
    await assert.rejects(admin.askForMore(mia, { teamId, resource: "vcpus", scope: "team", amount: "8", reason: "" }), /why you need it/);
    await assert.rejects(admin.askForMore(oz, { teamId, resource: "vcpus", scope: "team", amount: "8", reason: "mine" }), (err: Error & { code?: string }) => err.code === "forbidden");
    const asked = await admin.askForMore(mia, { teamId, resource: "vcpus", scope: "team", amount: "8", reason: "the release builds" });
    await assert.rejects(admin.decideRequest(mia, asked.id, true, ""), (err: Error & { code?: string }) => err.code === "forbidden");
    assert.equal((await admin.requestsFor(ada)).open.length, 1);
    await admin.decideRequest(ada, asked.id, true, "");
    assert.equal(Number((await db().quota.findFirstOrThrow({ where: { teamId, resource: "vcpus" } })).limit), 8);
    await assert.rejects(admin.decideRequest(ada, asked.id, false, "no"), /approved already/);
    const second = await admin.askForMore(mia, { teamId, resource: "vcpus", scope: "team", amount: "64", reason: "everything" });
    await assert.rejects(admin.decideRequest(ada, second.id, false, ""), /Say why you decline/);
    await admin.decideRequest(ada, second.id, false, "64 is the whole host");
    const mine = (await admin.requestsFor(mia)).mine;
    assert.deepEqual(mine.map((r) => [r.state, r.note]), [["declined", "64 is the whole host"], ["approved", ""]]);
  });

  test("bad limits get clear errors and change nothing: negative, absurd, no unit, a quota that does not exist, not an admin", async () => {
    await limit("diskBytes", 5n * BigInt(GiB));
    const before = await db().quota.findMany({ where: { teamId } });
    await assert.rejects(admin.setLimit(ada, teamId, "", "diskBytes", "-1G"), /cannot be negative/);
    await assert.rejects(admin.setLimit(ada, teamId, "", "diskBytes", "99999999P"), /at most 4 PiB|at most/);
    await assert.rejects(admin.setLimit(ada, teamId, "", "diskBytes", "500"), /a size with its unit/);
    await assert.rejects(admin.setLimit(ada, teamId, "", "guests", "1.5"), /whole number/);
    await assert.rejects(admin.setLimit(ada, teamId, "", "gpus", "1"), /There is no quota "gpus"/);
    await assert.rejects(admin.setLimit(mia, teamId, "", "guests", "100"), (err: Error & { code?: string }) => err.code === "forbidden");
    await assert.rejects(admin.setLimit(ada, teamId, oz.id, "guests", "1"), /not in this team/);
    assert.deepEqual(await db().quota.findMany({ where: { teamId } }), before);
    assert.equal(await admin.setLimit(ada, teamId, "", "memoryMiB", "64G"), 64 * 1024);
    assert.equal(await admin.setLimit(ada, teamId, "", "memoryMiB", ""), null);
    assert.equal(await db().quota.count({ where: { teamId, resource: "memoryMiB" } }), 0, "empty: no limit");
  });

  test("tasks at once: a change that would run one more task than the limit is refused; a delete never is", async () => {
    await db().quota.deleteMany({ where: { teamId } });
    const doomed = await diskOps.createDisk(mia, { pool: "default", file: "doomed.qcow2", format: "qcow2", size: "64M", encrypt: false, passphrase: "" });
    await limit("tasks", 1);
    const host0 = await db().host.findFirstOrThrow();
    await db().task.create({ data: { id: "web-long-running", kind: "convert", title: "a conversion still running", state: "running", hostId: host0.id, userId: ada.id, teamId } });
    await assert.rejects(
      diskOps.createDisk(mia, { pool: "default", file: "one-task-too-many.qcow2", format: "qcow2", size: "64M", encrypt: false, passphrase: "" }),
      overQuota("tasks", /quota of tasks at once is 1: 1 is in use and this needs 1 more/),
    );
    assert.equal((await agent.client.images([])).some((i) => i.file === "one-task-too-many.qcow2"), false, "nothing was made");
    await diskOps.deleteDisk(mia, doomed.id);
    await db().task.update({ where: { id: "web-long-running" }, data: { state: "succeeded" } });
    await diskOps.createDisk(mia, { pool: "default", file: "one-task-fits.qcow2", format: "qcow2", size: "64M", encrypt: false, passphrase: "" });
    await db().quota.deleteMany({ where: { teamId } });
  });

  test("a live hold counts for its team and its member; an expired one (a web that died mid-change) does not", async () => {
    const before = await usage("guests");
    const mine = await usage("guests", mia.id);
    await db().quotaHold.create({ data: { teamId, userId: mia.id, guests: 7, expiresAt: new Date(Date.now() + 60_000) } });
    await db().quotaHold.create({ data: { teamId, userId: mia.id, guests: 100, expiresAt: new Date(Date.now() - 1000) } });
    assert.deepEqual([await usage("guests"), await usage("guests", mia.id), await usage("guests", ada.id)], [before + 7, mine + 7, await db().guest.count({ where: { teamId, ownerId: ada.id } })]);
    assert.equal(await quotas.pruneHolds(), 1, "the expired one is pruned");
    await db().quotaHold.deleteMany({ where: { teamId } });
  });

  test("the usage page's numbers are the checks' numbers, for every resource, team and member", async () => {
    await limit("guests", 100, mia.id);
    const [team] = (await admin.usageOverview(ada)).filter((t) => t.id === teamId);
    for (const row of team!.resources) assert.equal(row.used, await usage(row.resource), row.resource);
    const own = team!.members.find((m) => m.userId === mia.id)!;
    assert.equal(own.resources[0]!.used, await usage("guests", mia.id));
    const [seenByMia] = (await admin.usageOverview(mia)).filter((t) => t.id === teamId);
    const herself = seenByMia!.members.find((m) => m.userId === mia.id)!;
    assert.equal(herself.resources.length, 7, "a member sees all they use, limits or not");
    for (const row of herself.resources) assert.equal(row.used, await usage(row.resource, mia.id), row.resource);
    assert.deepEqual((await admin.usageOverview(oz)).map((t) => t.name), ["Other"], "a member sees their own teams' usage only");
  });
});
