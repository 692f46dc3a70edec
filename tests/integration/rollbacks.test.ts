/**
 * Half-done operations of the web, against a real agent and a real database: what a
 * failure undoes, and what it must leave alone. Races and failures are made to happen
 * between the web and the agent by a relay on the agent's socket (tests/helpers/relay.ts).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { SessionUser } from "../../server/auth/sessions";
import { startTestAgent, type TestAgent } from "../helpers/agent";
import { createTestDb, sessionUser, useAsProcessDatabase, type TestDb } from "../helpers/db";
import { relay, type Relay, type RelayHook } from "../helpers/relay";
import { testDefinition } from "../helpers/specs";

describe("rollbacks between the web and the agent", () => {
  let agent: TestAgent;
  let database: TestDb;
  let server: Relay;
  let hook: RelayHook | null = null;
  let user: SessionUser;
  let admin: SessionUser;
  let host: { id: string; endpoint: string };
  // Loaded once the test database is the process's (their `db` is taken on first import).
  let makeGuest: typeof import("../../server/web/guest-factory").makeGuest;
  let removeIso: typeof import("../../server/web/isos").removeIso;
  const disksDir = () => path.join(agent.dataDir, "disks");

  before(async () => {
    agent = await startTestAgent();
    database = await createTestDb();
    useAsProcessDatabase(database);
    ({ makeGuest } = await import("../../server/web/guest-factory"));
    ({ removeIso } = await import("../../server/web/isos"));
    const socket = path.join(agent.dataDir, "relay.sock");
    server = await relay(agent.socketPath, socket, () => hook);
    const db = database.db;
    const team = await db.team.create({ data: { name: "rollbacks" } });
    const row = await db.host.create({ data: { name: "rollbacks", endpoint: `unix:${socket}` } });
    host = { id: row.id, endpoint: row.endpoint };
    const m = await db.user.create({ data: { username: "member", passwordHash: "x", role: "member", teamId: team.id, memberships: { create: { teamId: team.id, role: "member" } } } });
    const a = await db.user.create({ data: { username: "root-admin", passwordHash: "x", role: "admin", teamId: team.id, memberships: { create: { teamId: team.id, role: "owner" } } } });
    user = await sessionUser(db, m.id);
    admin = await sessionUser(db, a.id);
  });
  after(async () => {
    server?.close();
    await agent?.cleanup();
    await database?.cleanup();
  });

  const definition = (name: string, disks: number) => testDefinition(name, Array.from({ length: disks }, () => 1));

  test("a new guest whose second disk the agent refuses (its name was taken meanwhile) removes its first disk, and not the file that took the name", async () => {
    let creates = 0;
    let taken = "";
    hook = (req, body) => {
      // Another writer makes the file the second disk is about to get, just before the agent does.
      if (req.method === "POST" && req.url === "/v1/images" && ++creates === 2) {
        taken = (JSON.parse(body.toString("utf8")) as { file: string }).file;
        fs.writeFileSync(path.join(disksDir(), taken), "another writer's data");
      }
    };

    await assert.rejects(makeGuest(user, host, definition("doomed", 2)), (err: Error & { code?: string }) => err.code === "conflict" && /already an image/.test(err.message));
    assert.ok(taken, "the second disk was asked for");
    assert.equal(fs.readFileSync(path.join(disksDir(), taken), "utf8"), "another writer's data", "the file the agent refused to overwrite is untouched");
    assert.deepEqual(fs.readdirSync(disksDir()).filter((f) => f.startsWith("doomed-")), [taken], "the first disk, which it made, is gone");
    assert.equal(await database.db.guest.count({ where: { name: "doomed" } }), 0);
    assert.equal(await database.db.disk.count(), 0, "no disk row is left");
    fs.rmSync(path.join(disksDir(), taken));
    hook = null;
  });

  test("a host port another team's guest holds is refused without naming that guest", async () => {
    const db = database.db;
    const other = await db.team.create({ data: { name: "elsewhere" } });
    const stranger = await db.user.create({ data: { username: "stranger", passwordHash: "x", teamId: other.id, memberships: { create: { teamId: other.id, role: "owner" } } } });
    const network = await db.network.create({ data: { name: "user", mode: "user", ownerId: stranger.id, teamId: other.id, hostId: host.id } });
    const port = (await agent.client.host()).forwards.firstPort + 7;
    await db.guest.create({
      data: { name: "secret-project", vcpus: 1, memoryMiB: 256, ownerId: stranger.id, teamId: other.id, hostId: host.id, nics: { create: { mac: "52:54:00:aa:bb:77", model: "virtio", networkId: network.id, forwards: JSON.stringify([{ protocol: "tcp", hostPort: port, guestPort: 22 }]) } } },
    });
    const forwarding = { ...definition("wants-port", 0), nics: [{ model: "virtio" as const, isolated: false, forwards: [{ protocol: "tcp" as const, hostPort: port, guestPort: 22 }] }] };
    await assert.rejects(makeGuest(user, host, forwarding), (err: Error & { code?: string }) => {
      assert.equal(err.code, "conflict");
      assert.match(err.message, /already forwarded to a guest you cannot see/);
      assert.doesNotMatch(err.message, /secret-project/);
      return true;
    });
    await assert.rejects(makeGuest(admin, host, { ...forwarding, name: "admin-wants-port" }), /already forwarded to secret-project/, "an admin is told which");
  });

  test("an ISO a guest took as its CD-ROM is not deleted: the database refuses, the file and its record stay", async () => {
    const db = database.db;
    fs.copyFileSync(path.join(agent.dataDir, "images", "demo.iso"), path.join(agent.dataDir, "images", "kept.iso"));
    const iso = await db.isoImage.create({ data: { hostId: host.id, name: "kept.iso", sizeBytes: 1n } });
    const guest = await db.guest.create({
      data: { name: "holder", machine: "q35", firmware: "bios", vcpus: 1, sockets: 1, threads: 1, memoryMiB: 256, bootOrder: "cdrom", display: "std", serial: true, rtc: "utc", ownerId: user.id, teamId: user.teamId, hostId: host.id },
    });
    await db.cdrom.create({ data: { guestId: guest.id, isoId: iso.id, position: 0 } });
    await assert.rejects(removeIso(admin, host, "kept.iso"), (err: Error & { code?: string }) => err.code === "conflict" && /kept\.iso is the CD-ROM of holder/.test(err.message));
    assert.ok(fs.existsSync(path.join(agent.dataDir, "images", "kept.iso")));
    assert.equal(await db.isoImage.count({ where: { name: "kept.iso" } }), 1);
    await assert.rejects(removeIso(user, host, "kept.iso"), (err: Error & { code?: string }) => err.code === "forbidden", "members may not");
    await db.guest.delete({ where: { id: guest.id } });
  });

  test("an ISO whose file the agent fails to remove keeps its record; one it removes loses it", async () => {
    const db = database.db;
    let failNext = true;
    hook = (req) => {
      if (req.method === "DELETE" && req.url?.startsWith("/v1/isos/") && failNext) {
        failNext = false;
        return { status: 500, json: { code: "internal", message: "The ISO folder is on a read-only disk." } };
      }
    };
    const before = await db.isoImage.findUniqueOrThrow({ where: { hostId_name: { hostId: host.id, name: "kept.iso" } } });
    await assert.rejects(removeIso(admin, host, "kept.iso"));
    const after = await db.isoImage.findUniqueOrThrow({ where: { hostId_name: { hostId: host.id, name: "kept.iso" } } });
    assert.deepEqual(after, before, "the same record, id and all");
    assert.ok(fs.existsSync(path.join(agent.dataDir, "images", "kept.iso")));

    await removeIso(admin, host, "kept.iso");
    assert.equal(fs.existsSync(path.join(agent.dataDir, "images", "kept.iso")), false);
    assert.equal(await db.isoImage.count({ where: { name: "kept.iso" } }), 0);
    const task = await db.task.findFirst({ where: { title: "delete ISO kept.iso", state: "failed" } });
    assert.match(task?.message ?? "", /read-only/, "the failed attempt is on the tasks page with its reason");
  });
});
