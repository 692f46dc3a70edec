/**
 * A fresh, real SQLite database for one test file, with the project's migrations
 * applied exactly as `prisma migrate deploy` would apply them.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import Database from "better-sqlite3";
import { createSession, userForSession, type SessionUser } from "../../server/auth/sessions";
import { createPrisma, type PrismaClient } from "../../server/db/prisma";

export interface TestDb {
  db: PrismaClient;
  url: string;
  dir: string;
  cleanup(): Promise<void>;
}

export function applyMigrations(file: string): void {
  const sqlite = new Database(file);
  try {
    const root = path.resolve("prisma/migrations");
    for (const name of fs.readdirSync(root).filter((n) => /^\d+_/.test(n)).sort()) {
      sqlite.exec(fs.readFileSync(path.join(root, name, "migration.sql"), "utf8"));
    }
  } finally {
    sqlite.close();
  }
}

export async function createTestDb(): Promise<TestDb> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-db-"));
  const file = path.join(dir, "test.db");
  applyMigrations(file);
  const url = `file:${file}`;
  const db = createPrisma(url);
  return {
    db,
    url,
    dir,
    async cleanup() {
      await db.$disconnect();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A user as a session sees them (their teams and roles read from the database, as for a login). */
export async function sessionUser(db: PrismaClient, userId: string): Promise<SessionUser> {
  const user = await userForSession(db, (await createSession(db, userId)).secret);
  if (!user) throw new Error(`user ${userId} has no working session (disabled?)`);
  return user;
}

/** A team, a user in it, the local host and one guest row: the minimum most tests need. */
export async function seedBasics(db: PrismaClient, endpoint = "unix:/nonexistent/agent.sock") {
  const team = await db.team.create({ data: { name: `team-${Math.random().toString(36).slice(2)}` } });
  const user = await db.user.create({
    data: { username: `user-${Math.random().toString(36).slice(2)}`, passwordHash: "x", role: "member", teamId: team.id, memberships: { create: { teamId: team.id, role: "member" } } },
  });
  const host = await db.host.create({ data: { name: `host-${Math.random().toString(36).slice(2)}`, endpoint } });
  const guest = await db.guest.create({
    data: { name: "g1", vcpus: 1, memoryMiB: 256, ownerId: user.id, teamId: team.id, hostId: host.id },
  });
  return { team, user, host, guest };
}

export type Basics = Awaited<ReturnType<typeof seedBasics>>;

/**
 * Two teams, alpha and beta, and their people as sessions see them: maria, a member of
 * alpha; victor, its viewer; sam, a member of beta; ada, an admin working in alpha (its
 * owner, as the team switcher leaves an admin).
 */
export async function twoTeams(db: PrismaClient) {
  const alpha = await db.team.create({ data: { name: "alpha" } });
  const beta = await db.team.create({ data: { name: "beta" } });
  const user = (name: string, teamId: string, role: string, admin = false) =>
    db.user
      .create({ data: { username: name, passwordHash: "x", role: admin ? "admin" : "member", teamId, memberships: { create: { teamId, role } } } })
      .then((u) => sessionUser(db, u.id));
  return {
    alpha,
    beta,
    member: await user("maria", alpha.id, "member"),
    viewer: await user("victor", alpha.id, "viewer"),
    stranger: await user("sam", beta.id, "member"),
    admin: await user("ada", alpha.id, "owner", true),
  };
}

/**
 * A fresh migrated database with seedBasics() for the enclosing describe block: made
 * before its tests, removed after them. `ready` gets both (and may add rows of its own).
 */
export function withSeededDb(ready: (seeded: { t: TestDb; basics: Basics }) => void | Promise<void>): void {
  let t: TestDb | undefined;
  before(async () => {
    t = await createTestDb();
    await ready({ t, basics: await seedBasics(t.db) });
  });
  after(async () => {
    await t?.cleanup();
  });
}

/**
 * Makes `db` of server/db/client.ts this test database's client, for a test that drives
 * the web's modules directly: call it before the first import of any of them (import
 * them dynamically afterwards), since that module takes the client once, when loaded.
 */
export function useAsProcessDatabase(database: TestDb): void {
  const slot = globalThis as unknown as { guesthousePrisma?: PrismaClient };
  if (slot.guesthousePrisma && slot.guesthousePrisma !== database.db) throw new Error("the process already has a database client: set the test's before loading the web's modules");
  slot.guesthousePrisma = database.db;
}
