/**
 * People (server/web/people.ts) on a real database: invitations (single use, expiring,
 * revocable, raced), accounts with one-time passwords, changing a password (the old one
 * required, other sessions end), sessions, disabling and deleting users (the last admin
 * kept, everything handed over, nothing of theirs deleted), look-alike names.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { verifyPassword } from "../../server/auth/password";
import { createSession, userForSession, type SessionUser } from "../../server/auth/sessions";
import { hashSecret } from "../../server/auth/tokens";
import { createTestDb, sessionUser, useAsProcessDatabase, type TestDb } from "../helpers/db";

describe("people", () => {
  let database: TestDb;
  let people: typeof import("../../server/web/people");
  let admin: SessionUser;
  let owner: SessionUser;
  let member: SessionUser;
  let teamId: string;
  let otherTeamId: string;
  const code = (c: string, message?: RegExp) => (err: Error & { code?: string }) => err.code === c && (!message || message.test(err.message));

  before(async () => {
    database = await createTestDb();
    useAsProcessDatabase(database);
    people = await import("../../server/web/people");
    const db = database.db;
    teamId = (await db.team.create({ data: { name: "crew", nameKey: "crew" } })).id;
    otherTeamId = (await db.team.create({ data: { name: "others", nameKey: "others" } })).id;
    const mk = (username: string, role: "admin" | "member", teamRole: string) =>
      db.user.create({ data: { username, usernameKey: username, passwordHash: "x", role, teamId, memberships: { create: { teamId, role: teamRole } } } });
    admin = await sessionUser(db, (await mk("root", "admin", "owner")).id);
    owner = await sessionUser(db, (await mk("olga", "member", "owner")).id);
    member = await sessionUser(db, (await mk("max", "member", "member")).id);
  });
  after(() => database?.cleanup());

  test("an invitation makes one account in its team with its role, and then works no more", async () => {
    const { token } = await people.createInvite(owner, teamId, "operator", 24);
    assert.deepEqual({ ...(await people.inviteFor(token)), expiresAt: undefined }, { ok: true, team: "crew", role: "operator", expiresAt: undefined });
    const { userId } = await people.redeemInvite(token, "Neo", "a long enough password");
    const made = await database.db.user.findUniqueOrThrow({ where: { id: userId }, include: { memberships: true } });
    assert.equal(made.username, "Neo");
    assert.deepEqual(made.memberships.map((m) => [m.teamId, m.role]), [[teamId, "operator"]]);
    assert.ok(await verifyPassword("a long enough password", made.passwordHash));
    await assert.rejects(people.redeemInvite(token, "Trinity", "a long enough password"), code("conflict", /used already/));
    assert.equal(await database.db.user.count({ where: { username: "Trinity" } }), 0);
  });

  test("ten people with one link make one account", async () => {
    const { token } = await people.createInvite(admin, teamId, "member", 1);
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => people.redeemInvite(token, `racer${i}`, "a long enough password")));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    assert.equal(await database.db.user.count({ where: { username: { startsWith: "racer" } } }), 1);
  });

  test("expired, revoked, forged and malformed invitations are refused with why; bad names and passwords write nothing", async () => {
    const { token: expired } = await people.createInvite(owner, teamId, "member", 1);
    await database.db.invite.update({ where: { id: hashSecret(expired) }, data: { expiresAt: new Date(Date.now() - 1000) } });
    await assert.rejects(people.redeemInvite(expired, "late", "a long enough password"), code("conflict", /expired/));
    const { token: revoked } = await people.createInvite(owner, teamId, "member", 1);
    await people.revokeInvite(owner, hashSecret(revoked));
    await assert.rejects(people.redeemInvite(revoked, "cancelled", "a long enough password"), code("conflict", /revoked/));
    await assert.rejects(people.revokeInvite(owner, hashSecret(revoked)), code("conflict", /used or revoked already/));
    for (const forged of ["x".repeat(43), "short", "../../etc/passwd"]) {
      assert.deepEqual(await people.inviteFor(forged), { ok: false, reason: "This invitation link is not valid." });
    }
    const { token } = await people.createInvite(owner, teamId, "member", 1);
    await assert.rejects(people.redeemInvite(token, "ok-name", "short"), code("invalid-input", /at least 10 characters/));
    await assert.rejects(people.redeemInvite(token, "bad name!", "a long enough password"), code("invalid-input", /user name/));
    await assert.rejects(people.redeemInvite(token, "MAX", "a long enough password"), code("conflict", /taken/), "a look-alike of max");
    await assert.rejects(people.redeemInvite(token, "ｍａｘ", "a long enough password"), code("conflict", /taken/), "max in full width");
    assert.deepEqual(await people.inviteFor(token).then((o) => o.ok), true, "refusals did not use the invitation up");
    await assert.rejects(people.createInvite(member, teamId, "member", 1), code("forbidden"));
    await assert.rejects(people.createInvite(owner, otherTeamId, "member", 1), code("forbidden"));
    await assert.rejects(people.createInvite(owner, teamId, "emperor", 1), code("invalid-input", /A role is one of/));
    await assert.rejects(people.createInvite(owner, teamId, "member", 0), code("invalid-input", /1 hour at least/));
    await assert.rejects(people.createInvite(owner, teamId, "member", 99999), code("invalid-input", /30 days at most/));
  });

  test("an account with a one-time password can do nothing but change it; then the old one is gone and other sessions end", async () => {
    const { userId, password } = await people.createAccount(owner, "trainee", teamId, "member");
    const first = await createSession(database.db, userId);
    const other = await createSession(database.db, userId);
    const user = (await userForSession(database.db, first.secret))!;
    assert.equal(user.mustChangePassword, true);
    assert.equal(user.disabled, true, "the policy allows nothing until then");
    await assert.rejects(people.changePassword(user, "not it", "a brand new password"), code("invalid-input", /current password is not right/));
    await assert.rejects(people.changePassword(user, password, password), code("invalid-input", /is the current one/));
    await people.changePassword(user, password, "a brand new password");
    const after = (await userForSession(database.db, first.secret))!;
    assert.equal(after.mustChangePassword, false);
    assert.equal(after.disabled, false);
    assert.equal(await userForSession(database.db, other.secret), null, "the other session ended");
  });

  test("an admin resets a forgotten password: a one-time password, every session ends; not an owner, not an SSO user's", async () => {
    const { userId } = await people.createAccount(owner, "forgetful", teamId, "member");
    const session = await createSession(database.db, userId);
    await assert.rejects(people.resetPassword(owner, userId), code("forbidden", /Only admins reset passwords/));
    const { password } = await people.resetPassword(admin, userId);
    assert.equal(await userForSession(database.db, session.secret), null, "their session ended");
    const row = await database.db.user.findUniqueOrThrow({ where: { id: userId } });
    assert.equal(row.mustChangePassword, true);
    assert.equal(await verifyPassword(password, row.passwordHash), true);
    await database.db.user.update({ where: { id: userId }, data: { ssoSubject: "https://id.example.com/ forgetful" } });
    await assert.rejects(people.resetPassword(admin, userId), code("conflict", /identity provider/));
  });

  test("a user sees their sessions, this one marked, and ends another", async () => {
    const a = await createSession(database.db, member.id, { userAgent: "Firefox", address: "192.0.2.7" });
    const b = await createSession(database.db, member.id, { userAgent: "Chromium", address: "192.0.2.8" });
    const me = (await userForSession(database.db, a.secret))!;
    const listed = await people.sessionsOf(me);
    assert.equal(listed[0]!.current, true);
    assert.equal(listed[0]!.userAgent, "Firefox");
    assert.ok(listed.some((s) => s.address === "192.0.2.8"));
    await people.endOwnSession(me, hashSecret(b.secret));
    assert.equal(await userForSession(database.db, b.secret), null);
    await assert.rejects(people.endOwnSession(me, (await people.sessionsOf(admin))[0]!.id), code("not-found"), "another user's session is not theirs to end");
  });

  test("disabling ends every session at once; the last admin can be neither disabled, demoted nor deleted", async () => {
    const s = await createSession(database.db, member.id);
    await people.setDisabled(admin, member.id, true);
    assert.equal(await userForSession(database.db, s.secret), null);
    await assert.rejects(people.setDisabled(owner, member.id, false), code("forbidden"));
    await people.setDisabled(admin, member.id, false);
    await assert.rejects(people.setDisabled(admin, admin.id, true), code("conflict", /last admin/));
    await assert.rejects(people.setAdmin(admin, admin.id, false), code("conflict", /last admin/));
    await assert.rejects(people.deleteUser(admin, admin.id, owner.id), code("conflict", /last admin/));
    await people.setAdmin(admin, owner.id, true);
    await people.setAdmin(admin, owner.id, false);
  });

  test("deleting a user hands their guests and disks to someone in the same teams; nothing of theirs is deleted", async () => {
    const db = database.db;
    const host = await db.host.create({ data: { name: "h", endpoint: "unix:/nonexistent" } });
    const { userId: leaverId } = await people.createAccount(admin, "leaver", teamId, "member");
    await db.membership.create({ data: { userId: leaverId, teamId: otherTeamId, role: "member" } });
    const guest = await db.guest.create({ data: { name: "leavers-guest", vcpus: 1, memoryMiB: 64, ownerId: leaverId, teamId: otherTeamId, hostId: host.id } });
    await assert.rejects(people.deleteUser(admin, leaverId, owner.id), code("conflict", /olga is not in others/));
    assert.equal(await db.user.count({ where: { id: leaverId } }), 1, "nothing changed");
    await db.membership.create({ data: { userId: owner.id, teamId: otherTeamId, role: "member" } });
    await assert.rejects(people.deleteUser(member, leaverId, owner.id), code("forbidden"));
    await people.deleteUser(admin, leaverId, owner.id);
    assert.equal(await db.user.count({ where: { id: leaverId } }), 0);
    assert.equal((await db.guest.findUniqueOrThrow({ where: { id: guest.id } })).ownerId, owner.id, "the guest is olga's now");
  });
});
