/**
 * Two-factor login (server/web/second-factor.ts) on a real database: setting it up, codes
 * taken once, recovery codes, turning it off, an admin's reset, and a team that requires
 * it holding its members' password sessions at the account page until they set it up.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createSession, userForSession, type SessionUser } from "../../server/auth/sessions";
import { totpCode, TOTP_PERIOD_S } from "../../server/auth/totp";
import { hashPassword } from "../../server/auth/password";
import { createTestDb, sessionUser, useAsProcessDatabase, type TestDb } from "../helpers/db";

describe("two-factor login", () => {
  let database: TestDb;
  let factor: typeof import("../../server/web/second-factor");
  let mia: SessionUser;
  let ada: SessionUser;
  let teamId = "";
  /** Recovery codes of mia's not used yet. */
  let kept: string[] = [];
  const db = () => database.db;
  const secretOf = async (userId: string) => (await db().user.findUniqueOrThrow({ where: { id: userId } })).totpSecret!;
  const code = (c: string, message?: RegExp) => (err: Error & { code?: string }) => err.code === c && (!message || message.test(err.message));

  before(async () => {
    database = await createTestDb();
    useAsProcessDatabase(database);
    factor = await import("../../server/web/second-factor");
    const team = await db().team.create({ data: { name: "Secure" } });
    teamId = team.id;
    const passwordHash = await hashPassword("correct horse battery");
    const mk = (username: string, role: string, hostRole = "member") =>
      db().user.create({ data: { username, usernameKey: username, passwordHash, role: hostRole, teamId, memberships: { create: { teamId, role } } } });
    mia = await sessionUser(db(), (await mk("mia", "member")).id);
    ada = await sessionUser(db(), (await mk("ada", "owner", "admin")).id);
  });
  after(() => database?.cleanup());

  test("set up with a code from the app: on, ten recovery codes; a wrong code changes nothing", async () => {
    const { secret, uri, qrSvg } = await factor.startTotp(mia);
    assert.match(uri, /Guesthouse:mia/);
    assert.match(qrSvg, /^<svg/);
    await assert.rejects(factor.confirmTotp(mia, "000000"), code("invalid-input", /not right/));
    assert.equal((await db().user.findUniqueOrThrow({ where: { id: mia.id } })).totpEnabledAt, null);
    // The code of the previous step: the app's clock may be a little behind; a later code then still works.
    const { recoveryCodes } = await factor.confirmTotp(mia, totpCode(secret, Date.now() - TOTP_PERIOD_S * 1000));
    assert.equal(recoveryCodes.length, 10);
    assert.equal(await db().recoveryCode.count({ where: { userId: mia.id, usedAt: null } }), 10);
    assert.ok(!(await db().recoveryCode.findMany()).some((r) => recoveryCodes.includes(r.hash)), "only hashes are stored");
    await assert.rejects(factor.startTotp(mia), code("conflict", /on already/));
  });

  test("a code is taken once: the same code twice, or an older one after a newer, is refused", async () => {
    const secret = await secretOf(mia.id);
    const now = totpCode(secret);
    assert.equal(await factor.takeSecondFactor(mia.id, now), true);
    assert.equal(await factor.takeSecondFactor(mia.id, now), false, "replayed");
    assert.equal(await factor.takeSecondFactor(mia.id, totpCode(secret, Date.now() - TOTP_PERIOD_S * 1000)), false, "older than the last taken");
  });

  test("a recovery code logs in once; new codes replace the old ones", async () => {
    const { recoveryCodes } = await factor.renewRecoveryCodes(mia, totpCode(await secretOf(mia.id), Date.now() + TOTP_PERIOD_S * 1000));
    kept = recoveryCodes.slice(2);
    const [first, second] = recoveryCodes;
    assert.equal(await factor.takeSecondFactor(mia.id, first!.toUpperCase()), true);
    assert.equal(await factor.takeSecondFactor(mia.id, first!), false, "used up");
    assert.equal(await factor.takeSecondFactor(ada.id, second!), false, "another user's code is no code of theirs");
    assert.equal(await db().recoveryCode.count({ where: { userId: mia.id, usedAt: null } }), 9);
  });

  test("a team that requires it holds a member's password session until they set it up; a single sign-on session is the identity provider's", async () => {
    await assert.rejects(factor.setTeamRequiresTotp(mia, teamId, true), code("forbidden"));
    await factor.setTeamRequiresTotp(ada, teamId, true);
    const pw = await userForSession(db(), (await createSession(db(), ada.id)).secret);
    assert.deepEqual([pw?.mustEnrollTotp, pw?.disabled], [true, true], "ada has none yet: the policy lets her do nothing");
    const sso = await userForSession(db(), (await createSession(db(), ada.id, { via: "sso" })).secret);
    assert.deepEqual([sso?.mustEnrollTotp, sso?.disabled], [false, false]);
    const withIt = await userForSession(db(), (await createSession(db(), mia.id)).secret);
    assert.equal(withIt?.mustEnrollTotp, false, "mia has one");
  });

  test("turning it off takes the password and a code, and is refused while a team requires it", async () => {
    await assert.rejects(factor.turnOffTotp(mia, "correct horse battery", kept[0]), code("forbidden", /Secure requires a second factor/));
    await factor.setTeamRequiresTotp(ada, teamId, false);
    await assert.rejects(factor.turnOffTotp(mia, "wrong password", kept[0]), code("invalid-input", /not your password/));
    await assert.rejects(factor.turnOffTotp(mia, "correct horse battery", "999999"), code("invalid-input", /not right/));
    await factor.turnOffTotp(mia, "correct horse battery", kept[0]);
    const row = await db().user.findUniqueOrThrow({ where: { id: mia.id } });
    assert.deepEqual([row.totpSecret, row.totpEnabledAt, await db().recoveryCode.count({ where: { userId: mia.id } })], [null, null, 0]);
  });

  test("an admin resets someone's lost second factor: it goes and their sessions end; members may not", async () => {
    const { secret } = await factor.startTotp(mia);
    await factor.confirmTotp(mia, totpCode(secret));
    await createSession(db(), mia.id);
    await assert.rejects(factor.resetSecondFactor(mia, ada.id), code("forbidden"));
    await factor.resetSecondFactor(ada, mia.id);
    assert.equal((await db().user.findUniqueOrThrow({ where: { id: mia.id } })).totpEnabledAt, null);
    assert.equal(await db().session.count({ where: { userId: mia.id } }), 0);
  });
});
