/**
 * Teams and their members (server/web/teams.ts) on a real database: who may make,
 * rename and staff teams; names unique regardless of case and width, also when two
 * admins race; the last owner kept; bad input refused with nothing written.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { SessionUser } from "../../server/auth/sessions";
import { createTestDb, sessionUser, useAsProcessDatabase, type TestDb } from "../helpers/db";

describe("teams", () => {
  let database: TestDb;
  let teams: typeof import("../../server/web/teams");
  let admin: SessionUser;
  let owner: SessionUser;
  let member: SessionUser;
  let homeId: string;

  const code = (c: string, message?: RegExp) => (err: Error & { code?: string }) => err.code === c && (!message || message.test(err.message));

  before(async () => {
    database = await createTestDb();
    useAsProcessDatabase(database);
    teams = await import("../../server/web/teams");
    const db = database.db;
    const home = await db.team.create({ data: { name: "home", nameKey: "home" } });
    homeId = home.id;
    const mk = (username: string, role: "admin" | "member", teamRole: string) =>
      db.user.create({ data: { username, passwordHash: "x", role, teamId: home.id, memberships: { create: { teamId: home.id, role: teamRole } } } });
    admin = await sessionUser(db, (await mk("root", "admin", "owner")).id);
    owner = await sessionUser(db, (await mk("olga", "member", "owner")).id);
    member = await sessionUser(db, (await mk("max", "member", "member")).id);
    await mk("vera", "member", "viewer");
  });
  after(() => database?.cleanup());

  test("admins make teams; names are normalized, and look-alikes (case, full-width, spaces) are the same name", async () => {
    const made = await teams.createTeam(admin, "  Platform   Ops ");
    assert.equal(made.name, "Platform Ops");
    for (const lookAlike of ["platform ops", "PLATFORM OPS", "Ｐｌａｔｆｏｒｍ Ｏｐｓ", "Platform\u00a0Ops"]) {
      await assert.rejects(teams.createTeam(admin, lookAlike), code("conflict", /already a team named/), lookAlike);
    }
    await assert.rejects(teams.createTeam(owner, "Another"), code("forbidden", /Only admins make teams/));
    for (const bad of ["", "   ", "-leading", "a/b", "x".repeat(65), "bell\u0007", "\u202eevil"]) {
      await assert.rejects(teams.createTeam(admin, bad), code("invalid-input", /team's name/), JSON.stringify(bad));
    }
    assert.deepEqual((await database.db.team.findMany({ orderBy: { name: "asc" }, select: { name: true } })).map((t) => t.name), ["Platform Ops", "home"]);
  });

  test("twenty admins racing for look-alike names make one team", async () => {
    const names = Array.from({ length: 20 }, (_, i) => (i % 2 ? "race team" : "RACE TEAM"));
    const results = await Promise.allSettled(names.map((n) => teams.createTeam(admin, n)));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) if (r.status === "rejected") assert.equal((r.reason as { code?: string }).code, "conflict");
    assert.equal(await database.db.team.count({ where: { nameKey: "race team" } }), 1);
  });

  test("a team's owner adds members with a role and changes it; a member or another team's owner may not", async () => {
    await teams.setMembership(owner, homeId, "vera", "operator");
    assert.equal((await database.db.membership.findFirstOrThrow({ where: { teamId: homeId, user: { username: "vera" } } })).role, "operator");
    await assert.rejects(teams.setMembership(member, homeId, "vera", "owner"), code("forbidden", /owners and admins/));
    const other = await teams.createTeam(admin, "Elsewhere");
    await assert.rejects(teams.setMembership(owner, other.id, "max", "member"), code("forbidden"));
    await teams.setMembership(admin, other.id, "max", "viewer");
    assert.deepEqual((await sessionUser(database.db, member.id)).teams.get(other.id), "viewer", "max's next session sees the new team");
    await assert.rejects(teams.setMembership(owner, homeId, "nobody", "member"), code("not-found", /no user of that name/));
    await assert.rejects(teams.setMembership(owner, homeId, "max", "superuser"), code("invalid-input", /A role is one of owner, operator, member, viewer/));
  });

  test("the last owner of a team can be neither demoted nor removed; with a second owner, either can go", async () => {
    const team = await teams.createTeam(admin, "Solo");
    await teams.setMembership(admin, team.id, "olga", "owner");
    const olga = await sessionUser(database.db, owner.id); // her next request knows she owns it
    await assert.rejects(teams.setMembership(olga, team.id, "olga", "member"), code("conflict", /last owner/));
    await assert.rejects(teams.removeMembership(olga, team.id, olga.id), code("conflict", /last owner/));
    await teams.setMembership(olga, team.id, "max", "owner");
    await teams.removeMembership(olga, team.id, olga.id);
    assert.deepEqual((await database.db.membership.findMany({ where: { teamId: team.id }, select: { role: true, user: { select: { username: true } } } })).map((m) => [m.user.username, m.role]), [["max", "owner"]]);
    await assert.rejects(teams.removeMembership(admin, team.id, owner.id), code("not-found", /not in this team/));
  });

  test("renaming: admins only, to a free name", async () => {
    const team = await teams.createTeam(admin, "Old Name");
    await teams.renameTeam(admin, team.id, "New Name");
    await assert.rejects(teams.renameTeam(admin, team.id, "platform OPS"), code("conflict"));
    await assert.rejects(teams.renameTeam(owner, homeId, "Mine"), code("forbidden"));
    await assert.rejects(teams.renameTeam(admin, "no-such-team", "Whatever"), code("not-found"));
    assert.equal((await database.db.team.findUniqueOrThrow({ where: { id: team.id } })).name, "New Name");
  });

  test("the teams page's list: an admin sees every team; a member sees theirs, with members", async () => {
    const seen = await teams.teamsFor(await sessionUser(database.db, member.id));
    const his = await database.db.membership.findMany({ where: { userId: member.id }, select: { role: true, team: { select: { name: true } } } });
    assert.deepEqual(seen.map((t) => t.name).sort(), his.map((m) => m.team.name).sort(), "max's teams, and no other");
    assert.deepEqual(seen.filter((t) => t.manage).map((t) => t.name), his.filter((m) => m.role === "owner").map((m) => m.team.name), "managed where he is an owner");
    assert.ok(seen.find((t) => t.name === "home")!.memberships.some((m) => m.user.username === "olga"));
    assert.equal((await teams.teamsFor(admin)).length, await database.db.team.count());
  });
});
