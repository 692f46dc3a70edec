/**
 * Handing guests and disks over (server/web/hand-over.ts) on a real database: who may,
 * to whom, what goes with a guest (its disks, into another team its network cards), and
 * what is refused with nothing changed.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { SessionUser } from "../../server/auth/sessions";
import { createTestDb, sessionUser, useAsProcessDatabase, type TestDb } from "../helpers/db";

describe("hand-over", () => {
  let database: TestDb;
  let handOver: typeof import("../../server/web/hand-over");
  let owner: SessionUser;
  let member: SessionUser;
  let ids: Record<string, string> = {};
  const code = (c: string, message?: RegExp) => (err: Error & { code?: string }) => err.code === c && (!message || message.test(err.message));

  before(async () => {
    database = await createTestDb();
    useAsProcessDatabase(database);
    handOver = await import("../../server/web/hand-over");
    const db = database.db;
    const a = await db.team.create({ data: { name: "A" } });
    const b = await db.team.create({ data: { name: "B" } });
    const host = await db.host.create({ data: { name: "h", endpoint: "unix:/nonexistent" } });
    const mk = (username: string, teams: Array<[string, string]>) =>
      db.user.create({ data: { username, usernameKey: username, passwordHash: "x", teamId: teams[0]![0], memberships: { create: teams.map(([teamId, role]) => ({ teamId, role })) } } });
    const olga = await mk("olga", [[a.id, "owner"], [b.id, "owner"]]);
    const max = await mk("max", [[a.id, "member"]]);
    const bea = await mk("bea", [[b.id, "member"], [a.id, "viewer"]]);
    owner = await sessionUser(db, olga.id);
    member = await sessionUser(db, max.id);
    const net = await db.network.create({ data: { name: "user", mode: "user", ownerId: olga.id, teamId: a.id, hostId: host.id } });
    const guest = await db.guest.create({ data: { name: "build-box", vcpus: 1, memoryMiB: 64, ownerId: max.id, teamId: a.id, hostId: host.id, nics: { create: { mac: "52:54:00:00:00:01", model: "virtio", networkId: net.id } } } });
    const inside = await db.disk.create({ data: { volume: "volinside001", pool: "default", file: "inside.qcow2", format: "qcow2", sizeBytes: 1n, bus: "virtio", ownerId: max.id, teamId: a.id, hostId: host.id, guestId: guest.id } });
    const free = await db.disk.create({ data: { volume: "volfree00001", pool: "default", file: "free.qcow2", format: "qcow2", sizeBytes: 1n, bus: "virtio", ownerId: max.id, teamId: a.id, hostId: host.id } });
    ids = { a: a.id, b: b.id, guest: guest.id, inside: inside.id, free: free.id, olga: olga.id, max: max.id, bea: bea.id };
  });
  after(() => database?.cleanup());

  test("a member may not hand over even their own guest; a team's owner may", async () => {
    await assert.rejects(handOver.handOverGuest(member, ids.guest!, "olga"), code("forbidden", /owners and admins/));
    await handOver.handOverGuest(owner, ids.guest!, "olga");
    const guest = await database.db.guest.findUniqueOrThrow({ where: { id: ids.guest! }, include: { disks: true } });
    assert.equal(guest.ownerId, ids.olga);
    assert.deepEqual(guest.disks.map((d) => d.ownerId), [ids.olga], "its disk went with it");
  });

  test("to nobody who cannot own it there: a viewer, someone not in the team, no one", async () => {
    await assert.rejects(handOver.handOverGuest(owner, ids.guest!, "bea"), code("invalid-input", /viewer of that team/));
    await assert.rejects(handOver.handOverGuest(owner, ids.guest!, "nobody"), code("not-found"));
    await assert.rejects(handOver.handOverGuest(owner, ids.guest!, "max", ids.b), code("invalid-input", /not in that team/));
    assert.equal((await database.db.guest.findUniqueOrThrow({ where: { id: ids.guest! } })).ownerId, ids.olga, "nothing changed");
  });

  test("into another team: the guest, its disks and its network cards move; a name taken there is refused", async () => {
    await database.db.guest.create({ data: { name: "build-box", vcpus: 1, memoryMiB: 64, ownerId: ids.bea!, teamId: ids.b!, hostId: (await database.db.host.findFirstOrThrow()).id } });
    await assert.rejects(handOver.handOverGuest(owner, ids.guest!, "bea", ids.b), code("conflict", /already has a guest named "build-box"/));
    await database.db.guest.deleteMany({ where: { teamId: ids.b!, name: "build-box" } });
    await handOver.handOverGuest(owner, ids.guest!, "bea", ids.b);
    const guest = await database.db.guest.findUniqueOrThrow({ where: { id: ids.guest! }, include: { disks: true, nics: { include: { network: true } } } });
    assert.deepEqual([guest.teamId, guest.ownerId], [ids.b, ids.bea]);
    assert.deepEqual(guest.disks.map((d) => [d.teamId, d.ownerId]), [[ids.b, ids.bea]]);
    assert.deepEqual(guest.nics.map((n) => n.network.teamId), [ids.b]);
  });

  test("what arrives counts against the receiving team's quotas: over its limit, refused and nothing moved", async () => {
    const db = database.db;
    const host = await db.host.findFirstOrThrow();
    const spare = await db.disk.create({ data: { volume: "volspare0001", pool: "default", file: "spare.qcow2", format: "qcow2", sizeBytes: 10n * 2n ** 30n, bus: "virtio", ownerId: ids.olga!, teamId: ids.a!, hostId: host.id } });
    await db.quota.create({ data: { teamId: ids.b!, resource: "diskBytes", limit: 5n * 2n ** 30n } });
    await assert.rejects(handOver.handOverDisk(owner, spare.id, "bea", ids.b), (err: Error & { code?: string }) => err.code === "over-quota" && /Your team's quota of disk space/.test(err.message));
    assert.deepEqual(await db.disk.findUniqueOrThrow({ where: { id: spare.id }, select: { teamId: true, ownerId: true } }), { teamId: ids.a, ownerId: ids.olga });
    await db.quota.deleteMany({ where: { teamId: ids.b! } });
    await db.disk.delete({ where: { id: spare.id } });
  });

  test("an uploaded ISO changes team and uploader; the host's own ISO is no one's to hand; a member may not", async () => {
    const db = database.db;
    const host = await db.host.findFirstOrThrow();
    await db.isoImage.create({ data: { hostId: host.id, name: "team.iso", sizeBytes: 1n, teamId: ids.a!, uploaderId: ids.max! } });
    await db.isoImage.create({ data: { hostId: host.id, name: "host.iso", sizeBytes: 1n } });
    await assert.rejects(handOver.handOverIso(member, host, "team.iso", "olga"), code("forbidden"));
    await assert.rejects(handOver.handOverIso(owner, host, "host.iso", "olga"), code("not-found", /the host's own ISOs are everyone's/));
    await handOver.handOverIso(owner, host, "team.iso", "bea", ids.b);
    assert.deepEqual(await db.isoImage.findFirstOrThrow({ where: { name: "team.iso" }, select: { teamId: true, uploaderId: true } }), { teamId: ids.b, uploaderId: ids.bea });
  });

  test("a disk in a guest goes with its guest, not alone; a free one is handed over alone", async () => {
    await assert.rejects(handOver.handOverDisk(owner, ids.inside!, "olga"), code("conflict", /hand the guest over/));
    await handOver.handOverDisk(owner, ids.free!, "olga");
    assert.equal((await database.db.disk.findUniqueOrThrow({ where: { id: ids.free! } })).ownerId, ids.olga);
    const recorded = await database.db.event.findMany({ where: { kind: "hand-over" } });
    assert.ok(recorded.length >= 4, "each hand-over is in the audit trail");
  });
});
