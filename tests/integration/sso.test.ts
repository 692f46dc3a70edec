/**
 * Users from single sign-on (server/auth/sso.ts, ssoUser) on a real database: made at
 * their first login with the mapped teams (made too when missing), kept in line with the
 * groups at every login, known by the provider's subject and never merged into a
 * password account of the same name; refused without a mapped group or when disabled.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parseRoles, ssoConfig, type SsoConfig } from "../../server/auth/sso";
import { createTestDb, type TestDb } from "../helpers/db";

describe("users from single sign-on", () => {
  let database: TestDb;
  let config: SsoConfig;
  const db = () => database.db;
  const rolesOf = async (userId: string) =>
    Object.fromEntries((await db().membership.findMany({ where: { userId }, include: { team: true } })).map((m) => [m.team.name, m.role]));
  let ssoUser: typeof import("../../server/auth/sso").ssoUser;

  before(async () => {
    database = await createTestDb();
    ({ ssoUser } = await import("../../server/auth/sso"));
    config = { ...ssoConfig({ GUESTHOUSE_SSO_ISSUER: "https://id.example.com", GUESTHOUSE_SSO_CLIENT_ID: "gh" })!, roles: parseRoles("devs=Platform:member, leads=Platform:owner, qa=QA:viewer, ops=admin") };
    const first = await db().team.create({ data: { name: "Default", nameKey: "default" } });
    await db().team.create({ data: { name: "Platform", nameKey: "platform" } });
    const root = await db().user.create({ data: { username: "root", usernameKey: "root", passwordHash: "x", role: "admin", teamId: first.id } });
    await db().user.create({ data: { username: "mia", usernameKey: "mia", passwordHash: "x", teamId: first.id, memberships: { create: { teamId: first.id, role: "owner" } } } });
    assert.ok(root);
  });
  after(() => database?.cleanup());

  test("a first login makes the user with the mapped teams; a team the mapping names but nobody made yet is made", async () => {
    const user = await ssoUser(db(), config, { sub: "u-1", preferred_username: "mia", groups: ["devs", "qa"] });
    assert.equal(user.created, true);
    assert.equal(user.username, "mia-2", "the password account mia is someone else: never merged by name");
    assert.deepEqual(await rolesOf(user.id), { Platform: "member", QA: "viewer" });
    const row = await db().user.findUniqueOrThrow({ where: { id: user.id } });
    assert.equal(row.ssoSubject, "https://id.example.com/ u-1");
    assert.equal(row.usernameKey, "mia-2");
  });

  test("every login brings the mapped teams in line: a role changes, a team goes; teams the mapping does not name stay", async () => {
    const user = await db().user.findUniqueOrThrow({ where: { ssoSubject: "https://id.example.com/ u-1" } });
    const other = await db().team.create({ data: { name: "Side", nameKey: "side" } });
    await db().membership.create({ data: { userId: user.id, teamId: other.id, role: "member" } });
    const again = await ssoUser(db(), config, { sub: "u-1", preferred_username: "someone-else", groups: ["leads"] });
    assert.deepEqual([again.id, again.username, again.created], [user.id, "mia-2", false], "the same user, found by subject");
    assert.deepEqual(await rolesOf(user.id), { Platform: "owner", Side: "member" });
  });

  test("the admin flag follows the mapping, but the last admin stays one", async () => {
    const ops = await ssoUser(db(), config, { sub: "u-ops", email: "olga@example.com", groups: ["ops"] });
    assert.equal(ops.username, "olga");
    assert.equal((await db().user.findUniqueOrThrow({ where: { id: ops.id } })).role, "admin");
    await ssoUser(db(), config, { sub: "u-ops", groups: ["devs"] });
    assert.equal((await db().user.findUniqueOrThrow({ where: { id: ops.id } })).role, "member", "root is another admin");
    await db().user.update({ where: { username: "root" }, data: { role: "member" } });
    await ssoUser(db(), config, { sub: "u-ops", groups: ["ops"] });
    await ssoUser(db(), config, { sub: "u-ops", groups: ["devs"] });
    assert.equal((await db().user.findUniqueOrThrow({ where: { id: ops.id } })).role, "admin", "the only admin is kept one");
  });

  test("refused: someone no group maps, no subject, a disabled user", async () => {
    await assert.rejects(ssoUser(db(), config, { sub: "u-2", groups: ["marketing"] }), /puts you in no team/);
    assert.equal(await db().user.count({ where: { ssoSubject: { contains: "u-2" } } }), 0, "nobody was made");
    await assert.rejects(ssoUser(db(), config, { groups: ["devs"] }), /no subject/);
    await db().user.update({ where: { ssoSubject: "https://id.example.com/ u-1" }, data: { disabledAt: new Date() } });
    await assert.rejects(ssoUser(db(), config, { sub: "u-1", groups: ["devs"] }), /disabled/);
  });
});
