/**
 * The audit trail (server/web/audit.ts) on a real database: what a row keeps (who, the
 * role they acted in, the team, parameters without secrets), who may read which rows,
 * the page's filters, CSV that a spreadsheet cannot be tricked by, retention.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { SessionUser } from "../../server/auth/sessions";
import { createTestDb, sessionUser, useAsProcessDatabase, type TestDb } from "../helpers/db";

describe("audit trail", () => {
  let database: TestDb;
  let audit: typeof import("../../server/web/audit");
  let query: typeof import("../../server/web/audit-query");
  let admin: SessionUser;
  let owner: SessionUser;
  let member: SessionUser;
  let teamA: string;
  let teamB: string;

  before(async () => {
    database = await createTestDb();
    useAsProcessDatabase(database);
    audit = await import("../../server/web/audit");
    query = await import("../../server/web/audit-query");
    const db = database.db;
    teamA = (await db.team.create({ data: { name: "A" } })).id;
    teamB = (await db.team.create({ data: { name: "B" } })).id;
    const mk = (username: string, role: "admin" | "member", team: string, teamRole: string) =>
      db.user.create({ data: { username, passwordHash: "x", role, teamId: team, memberships: { create: { teamId: team, role: teamRole } } } });
    admin = await sessionUser(db, (await mk("root", "admin", teamA, "owner")).id);
    owner = await sessionUser(db, (await mk("olga", "member", teamB, "owner")).id);
    member = await sessionUser(db, (await mk("max", "member", teamB, "member")).id);
  });
  after(() => database?.cleanup());

  test("a row keeps who acted, in which role and team, and the parameters without secrets", async () => {
    await audit.recordEvent("disk-create", true, "created disk data.qcow2", member, null, { params: { file: "data.qcow2", passphrase: "hunter22", apiToken: "t", size: "10G" } });
    const row = await database.db.event.findFirstOrThrow({ where: { kind: "disk-create" } });
    assert.equal(row.username, "max");
    assert.equal(row.role, "member");
    assert.equal(row.teamId, teamB, "the actor's current team");
    assert.deepEqual(JSON.parse(row.params!), { file: "data.qcow2", passphrase: "(not kept)", apiToken: "(not kept)", size: "10G" });
    assert.ok(!JSON.stringify(row).includes("hunter22"));
    await audit.recordEvent("team-create", true, "made the team A", admin, null, { teamId: teamA });
    const adminRow = await database.db.event.findFirstOrThrow({ where: { kind: "team-create" } });
    assert.equal(adminRow.role, "admin");
    assert.equal(adminRow.teamId, teamA);
  });

  test("admins read every row, a team's owners their team's, members none", async () => {
    await audit.recordEvent("start", true, "start alpha", admin, null, { teamId: teamA });
    await audit.recordEvent("start", true, "start beta", member, null, { teamId: teamB });
    const seen = async (u: SessionUser) => (await database.db.event.findMany({ where: audit.auditWhere(u, {}), select: { teamId: true } })).map((r) => r.teamId);
    assert.ok((await seen(admin)).includes(teamA) && (await seen(admin)).includes(teamB));
    assert.ok((await seen(owner)).length > 0 && (await seen(owner)).every((t) => t === teamB), "olga sees team B's only");
    assert.equal(audit.canReadAudit(member), false);
    assert.equal(audit.canReadAudit(owner), true);
    // An owner asking for another team's rows gets none.
    assert.equal((await database.db.event.findMany({ where: audit.auditWhere(owner, { teamId: teamA }) })).length, 0);
  });

  test("the filters: user, action, target, time; a date that does not parse is left out and said so", async () => {
    const { filter, problems } = query.auditFilterOf({ user: "max", action: "start", target: "beta", from: "2020-01-01", to: "not a date" });
    assert.deepEqual(problems, ['"not a date" is not a date (use YYYY-MM-DD); the to filter is left out.']);
    const rows = await database.db.event.findMany({ where: audit.auditWhere(admin, filter) });
    assert.deepEqual(rows.map((r) => r.message), ["start beta"]);
    assert.deepEqual(query.auditFilterOf({ action: "drop table" }).problems, ['"drop table" is no action name; the action filter is left out.']);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    assert.equal((await database.db.event.findMany({ where: audit.auditWhere(admin, query.auditFilterOf({ from: tomorrow }).filter) })).length, 0);
  });

  test("CSV quotes what needs quoting and defuses what a spreadsheet would run", () => {
    assert.equal(audit.csvLine(["plain", 'say "hi"', "a,b", "line\nbreak", null]), 'plain,"say ""hi""","a,b","line\nbreak",');
    assert.equal(audit.csvLine(["=HYPERLINK(\"http://evil\")", "+1", "-2", "@SUM(A1)"]), `"'=HYPERLINK(""http://evil"")",'+1,'-2,'@SUM(A1)`);
  });

  test("rows older than the retention go; newer stay", async () => {
    await database.db.event.create({ data: { kind: "old", ok: true, message: "long ago", at: new Date(Date.now() - 400 * 86_400_000) } });
    const before = await database.db.event.count();
    assert.equal(await audit.pruneAudit(365), 1);
    assert.equal(await database.db.event.count(), before - 1);
    assert.equal(await database.db.event.count({ where: { kind: "old" } }), 0);
  });
});
