/**
 * A user's second factor: setting up TOTP (a secret shown once as a QR code, confirmed
 * with a first code), recovery codes (shown once, each taken once), turning it off (the
 * password and a code; not while a team of theirs requires it), an admin's reset for a
 * lost phone, and the check a password login makes. Teams require it of their members
 * (`Team.requireTotp`, set by the team's owners and admins): until such a member has set
 * it up, their session may do nothing else (see server/auth/sessions.ts).
 */
import { canManageHost, canManageTeam } from "../auth/policy";
import { verifyPassword } from "../auth/password";
import type { SessionUser } from "../auth/sessions";
import { enrollment, isRecoveryCode, newRecoveryCodes, newTotpSecret, recoveryHash, totpStep } from "../auth/totp";
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";

const wrongCode = () => new GuesthouseError("invalid-input", "That code is not right (or was used already). Type the six digits your app shows now.");

/** Begins setting up TOTP: a new secret, not in use until confirmed with a code. */
export async function startTotp(user: SessionUser): Promise<{ secret: string; uri: string; qrSvg: string }> {
  const row = await db.user.findUniqueOrThrow({ where: { id: user.id }, select: { totpEnabledAt: true } });
  if (row.totpEnabledAt) throw new GuesthouseError("conflict", "Two-factor login is on already. Turn it off first to set up another app.");
  const secret = newTotpSecret();
  await db.user.update({ where: { id: user.id }, data: { totpSecret: secret } });
  return { secret, ...enrollment(secret, user.username) };
}

/** Confirms the setup with a code from the app: TOTP is on, and here are the recovery codes (shown this once). */
export async function confirmTotp(user: SessionUser, code: unknown): Promise<{ recoveryCodes: string[] }> {
  const row = await db.user.findUniqueOrThrow({ where: { id: user.id }, select: { totpSecret: true, totpEnabledAt: true } });
  if (row.totpEnabledAt) throw new GuesthouseError("conflict", "Two-factor login is on already.");
  if (!row.totpSecret) throw new GuesthouseError("conflict", "Start the setup first: it shows the code to scan.");
  const step = totpStep(row.totpSecret, String(code ?? ""));
  if (step === null) throw wrongCode();
  const codes = newRecoveryCodes();
  await db.$transaction(async (tx) => {
    const { count } = await tx.user.updateMany({ where: { id: user.id, totpEnabledAt: null, totpSecret: row.totpSecret }, data: { totpEnabledAt: new Date(), totpLastStep: step } });
    if (count === 0) throw new GuesthouseError("conflict", "The setup changed meanwhile (another tab?). Start it again.");
    await tx.recoveryCode.deleteMany({ where: { userId: user.id } });
    await tx.recoveryCode.createMany({ data: codes.map((c) => ({ userId: user.id, hash: recoveryHash(c) })) });
  });
  return { recoveryCodes: codes };
}

/** New recovery codes for the old ones (a code from the app proves it is the user). */
export async function renewRecoveryCodes(user: SessionUser, code: unknown): Promise<{ recoveryCodes: string[] }> {
  if (!(await takeSecondFactor(user.id, String(code ?? "")))) throw wrongCode();
  const codes = newRecoveryCodes();
  await db.$transaction([
    db.recoveryCode.deleteMany({ where: { userId: user.id } }),
    db.recoveryCode.createMany({ data: codes.map((c) => ({ userId: user.id, hash: recoveryHash(c) })) }),
  ]);
  return { recoveryCodes: codes };
}

/** Teams of the user that require a second factor, by name. */
async function requiringTeams(userId: string): Promise<string[]> {
  const teams = await db.team.findMany({ where: { requireTotp: true, memberships: { some: { userId } } }, select: { name: true } });
  return teams.map((t) => t.name);
}

/** Turns TOTP off: the password and a code (or a recovery code); refused while a team of theirs requires it. */
export async function turnOffTotp(user: SessionUser, password: unknown, code: unknown): Promise<void> {
  const teams = await requiringTeams(user.id);
  if (teams.length) throw new GuesthouseError("forbidden", `${teams.join(", ")} require${teams.length === 1 ? "s" : ""} a second factor of its members; it stays on.`);
  const row = await db.user.findUniqueOrThrow({ where: { id: user.id }, select: { passwordHash: true } });
  if (typeof password !== "string" || !(await verifyPassword(password.slice(0, 1024), row.passwordHash))) {
    throw new GuesthouseError("invalid-input", "That is not your password.");
  }
  if (!(await takeSecondFactor(user.id, String(code ?? "")))) throw wrongCode();
  await clearSecondFactor(user.id);
}

/** An admin's reset for someone who lost their phone and codes: TOTP off, their sessions end. */
export async function resetSecondFactor(actor: SessionUser, userId: string): Promise<void> {
  if (!canManageHost(actor)) throw new GuesthouseError("forbidden", "Only admins reset someone's second factor.");
  if (!(await db.user.findUnique({ where: { id: String(userId) }, select: { id: true } }))) throw new GuesthouseError("not-found", "There is no such user.");
  await clearSecondFactor(String(userId));
  await db.session.deleteMany({ where: { userId: String(userId) } });
}

async function clearSecondFactor(userId: string): Promise<void> {
  await db.$transaction([
    db.user.update({ where: { id: userId }, data: { totpSecret: null, totpEnabledAt: null, totpLastStep: 0 } }),
    db.recoveryCode.deleteMany({ where: { userId } }),
  ]);
}

/**
 * Takes a second factor for a login or a change: a TOTP code of a time step later than
 * the last taken, or an unused recovery code (then used up). Each is taken atomically,
 * so two requests with one code cannot both pass.
 */
export async function takeSecondFactor(userId: string, code: string): Promise<boolean> {
  const text = code.trim().slice(0, 32);
  if (isRecoveryCode(text)) {
    const { count } = await db.recoveryCode.updateMany({ where: { userId, hash: recoveryHash(text), usedAt: null }, data: { usedAt: new Date() } });
    return count === 1;
  }
  const row = await db.user.findUnique({ where: { id: userId }, select: { totpSecret: true, totpEnabledAt: true } });
  if (!row?.totpSecret || !row.totpEnabledAt) return false;
  const step = totpStep(row.totpSecret, text);
  if (step === null) return false;
  const { count } = await db.user.updateMany({ where: { id: userId, totpLastStep: { lt: step } }, data: { totpLastStep: step } });
  return count === 1;
}

/** What the account page shows: on or off, recovery codes left, and whether a team requires it. */
export async function secondFactorOf(user: SessionUser) {
  const [row, left, teams] = await Promise.all([
    db.user.findUniqueOrThrow({ where: { id: user.id }, select: { totpEnabledAt: true } }),
    db.recoveryCode.count({ where: { userId: user.id, usedAt: null } }),
    requiringTeams(user.id),
  ]);
  return { enabledAt: row.totpEnabledAt, recoveryCodesLeft: left, requiredBy: teams };
}

/** Requires a second factor of a team's members, or stops requiring it: its owners and admins. */
export async function setTeamRequiresTotp(actor: SessionUser, teamId: string, required: boolean): Promise<void> {
  if (!canManageTeam(actor, String(teamId))) throw new GuesthouseError("forbidden", "Only the team's owners and admins decide this.");
  const { count } = await db.team.updateMany({ where: { id: String(teamId) }, data: { requireTotp: required } });
  if (count === 0) throw new GuesthouseError("not-found", "There is no such team.");
}
