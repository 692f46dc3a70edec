/**
 * People: letting them in, and out. Admins and a team's owners invite people into the
 * team with a single-use, expiring link (the invitee picks a user name and password), or
 * make an account with a one-time password that must be changed at the first login.
 * Users change their own password (the old one required; their other sessions end), see
 * their sessions and end any. Admins disable a user (every session ends at its next
 * request; open consoles and event streams within seconds; guests keep running) and
 * delete one, after handing everything the user owns to a user of the same teams. The
 * last admin is neither disabled, deleted nor made a member.
 *
 * User names are normalized (NFKC) and unique regardless of case and width
 * (`User.usernameKey` under a unique index).
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { canManageHost, canManageTeam, TEAM_ROLES } from "../auth/policy";
import { hashPassword, verifyPassword } from "../auth/password";
import type { SessionUser } from "../auth/sessions";
import { hashSecret, newSecret } from "../auth/tokens";
import { db } from "../db/client";
import { isUniqueViolationOn } from "../db/errors";
import { GuesthouseError } from "../domain/errors";
import { nameKey } from "../domain/names";
import { parseOrThrow } from "../domain/validation";

export const username = z
  .string()
  .max(256, "A user name has at most 64 characters.")
  .transform((s) => s.normalize("NFKC").trim())
  .pipe(z.string().regex(/^[\p{L}\p{N}][\p{L}\p{N}._-]{0,63}$/u, "A user name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."));

export const newPassword = z
  .string()
  .min(10, "A password has at least 10 characters.")
  .max(1024, "A password has at most 1024 characters.");

const teamRole = z.enum(TEAM_ROLES, { message: `A role is one of ${TEAM_ROLES.join(", ")}.` });

/** How long an invitation works: 1 hour to 30 days (default 3 days). */
export const inviteHours = z.coerce.number().int().min(1, "An invitation works for 1 hour at least.").max(720, "An invitation works for 30 days at most.").default(72);

const nameTaken = (name: string) => new GuesthouseError("conflict", `The user name "${name}" is taken (names are the same regardless of case and width). Choose another.`);

/** Makes a user, refusing a look-alike of an existing name. */
async function insertUser(tx: Tx, name: string, passwordHash: string, teamId: string, role: string, mustChangePassword: boolean): Promise<{ id: string }> {
  try {
    return await tx.user.create({
      data: { username: name, usernameKey: nameKey(name), passwordHash, mustChangePassword, teamId, memberships: { create: { teamId, role } } },
      select: { id: true },
    });
  } catch (err) {
    if (isUniqueViolationOn(err, "usernameKey") || isUniqueViolationOn(err, "username")) throw nameTaken(name);
    throw err;
  }
}

type Tx = Parameters<Parameters<typeof db.$transaction>[0]>[0];

/** A single-use link into a team with a role, for `hours`: its token, shown this once. */
export async function createInvite(actor: SessionUser, teamId: string, rawRole: unknown, rawHours: unknown): Promise<{ token: string; expiresAt: Date }> {
  const team = String(teamId);
  if (!canManageTeam(actor, team)) throw new GuesthouseError("forbidden", "Only the team's owners and admins invite people into it.");
  const role = parseOrThrow(teamRole, rawRole, "The role");
  const hours = parseOrThrow(inviteHours, rawHours ?? undefined, "How long the invitation works");
  if ((await db.team.count({ where: { id: team } })) !== 1) throw new GuesthouseError("not-found", "There is no such team.");
  const token = newSecret();
  const expiresAt = new Date(Date.now() + hours * 3600_000);
  await db.invite.create({ data: { id: hashSecret(token), teamId: team, role, createdById: actor.id, expiresAt } });
  return { token, expiresAt };
}

/** Ends an invitation that has not been used (its team's owners and admins). */
export async function revokeInvite(actor: SessionUser, inviteId: string): Promise<void> {
  const invite = await db.invite.findUnique({ where: { id: String(inviteId).slice(0, 64) }, select: { teamId: true } });
  if (!invite || !canManageTeam(actor, invite.teamId)) throw new GuesthouseError("not-found", "There is no such invitation.");
  const { count } = await db.invite.updateMany({ where: { id: String(inviteId), usedAt: null, revokedAt: null }, data: { revokedAt: new Date() } });
  if (count === 0) throw new GuesthouseError("conflict", "This invitation was used or revoked already.");
}

/** What an invitation link offers, or why it no longer works. */
export async function inviteFor(token: string): Promise<{ ok: true; team: string; role: string; expiresAt: Date } | { ok: false; reason: string }> {
  if (typeof token !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(token)) return { ok: false, reason: "This invitation link is not valid." };
  const invite = await db.invite.findUnique({ where: { id: hashSecret(token) }, select: { role: true, expiresAt: true, usedAt: true, revokedAt: true, team: { select: { name: true } } } });
  if (!invite) return { ok: false, reason: "This invitation link is not valid." };
  if (invite.usedAt) return { ok: false, reason: "This invitation was used already; ask for a new one." };
  if (invite.revokedAt) return { ok: false, reason: "This invitation was revoked; ask for a new one." };
  if (invite.expiresAt.getTime() <= Date.now()) return { ok: false, reason: "This invitation expired; ask for a new one." };
  return { ok: true, team: invite.team.name, role: invite.role, expiresAt: invite.expiresAt };
}

/**
 * Makes the invitee's account from an invitation, once: the invitation is taken in the
 * same transaction as the account is made, so two people with one link make one account.
 */
export async function redeemInvite(token: string, rawName: unknown, rawPassword: unknown): Promise<{ userId: string }> {
  const offer = await inviteFor(token);
  if (!offer.ok) throw new GuesthouseError("conflict", offer.reason);
  const name = parseOrThrow(username, rawName, "The user name");
  const password = parseOrThrow(newPassword, rawPassword, "The password");
  const passwordHash = await hashPassword(password);
  return db.$transaction(async (tx) => {
    const { count } = await tx.invite.updateMany({
      where: { id: hashSecret(token), usedAt: null, revokedAt: null, expiresAt: { gt: new Date() } },
      data: { usedAt: new Date(), usedBy: name },
    });
    if (count !== 1) throw new GuesthouseError("conflict", "This invitation was used meanwhile; ask for a new one.");
    const invite = await tx.invite.findUniqueOrThrow({ where: { id: hashSecret(token) }, select: { teamId: true, role: true } });
    const user = await insertUser(tx, name, passwordHash, invite.teamId, invite.role, false);
    return { userId: user.id };
  });
}

/** An account made for someone, with a one-time password (shown this once) they must change at their first login. */
export async function createAccount(actor: SessionUser, rawName: unknown, teamId: string, rawRole: unknown): Promise<{ userId: string; password: string }> {
  const team = String(teamId);
  if (!canManageTeam(actor, team)) throw new GuesthouseError("forbidden", "Only the team's owners and admins make accounts in it.");
  const name = parseOrThrow(username, rawName, "The user name");
  const role = parseOrThrow(teamRole, rawRole, "The role");
  if ((await db.team.count({ where: { id: team } })) !== 1) throw new GuesthouseError("not-found", "There is no such team.");
  const password = randomBytes(12).toString("base64url");
  const { id } = await db.$transaction(async (tx) => insertUser(tx, name, await hashPassword(password), team, role, true));
  return { userId: id, password };
}

/**
 * An admin's reset of someone's forgotten password: a new one-time password (shown this
 * once) that must be changed at the next login; every session of theirs ends. Someone who
 * signs in through the identity provider has no password here to reset.
 */
export async function resetPassword(actor: SessionUser, userId: string): Promise<{ password: string; username: string }> {
  if (!canManageHost(actor)) throw new GuesthouseError("forbidden", "Only admins reset passwords.");
  const user = await db.user.findUnique({ where: { id: String(userId) }, select: { id: true, username: true, ssoSubject: true } });
  if (!user) throw new GuesthouseError("not-found", "There is no such user.");
  if (user.ssoSubject) throw new GuesthouseError("conflict", `${user.username} logs in through the identity provider; their password is kept there.`);
  if (user.id === actor.id) throw new GuesthouseError("invalid-input", "Change your own password on your account page.");
  const password = randomBytes(12).toString("base64url");
  const passwordHash = await hashPassword(password);
  await db.$transaction([
    db.user.update({ where: { id: user.id }, data: { passwordHash, mustChangePassword: true } }),
    db.session.deleteMany({ where: { userId: user.id } }),
  ]);
  return { password, username: user.username };
}

/** A user's new password: the old one required; every other session of theirs ends. */
export async function changePassword(user: SessionUser, rawOld: unknown, rawNew: unknown): Promise<void> {
  const row = await db.user.findUniqueOrThrow({ where: { id: user.id }, select: { passwordHash: true } });
  if (typeof rawOld !== "string" || !(await verifyPassword(rawOld.slice(0, 1024), row.passwordHash))) {
    throw new GuesthouseError("invalid-input", "The current password is not right.");
  }
  const password = parseOrThrow(newPassword, rawNew, "The new password");
  if (password === rawOld) throw new GuesthouseError("invalid-input", "The new password is the current one; choose another.");
  const passwordHash = await hashPassword(password);
  await db.$transaction([
    db.user.update({ where: { id: user.id }, data: { passwordHash, mustChangePassword: false } }),
    db.session.deleteMany({ where: { userId: user.id, NOT: { id: user.sessionId } } }),
  ]);
}

/** The user's sessions, this one first. */
export async function sessionsOf(user: SessionUser) {
  const rows = await db.session.findMany({
    where: { userId: user.id, expiresAt: { gt: new Date() } },
    orderBy: { lastSeenAt: "desc" },
    select: { id: true, userAgent: true, address: true, createdAt: true, lastSeenAt: true },
  });
  return rows.map((r) => ({ ...r, current: r.id === user.sessionId })).sort((a, b) => Number(b.current) - Number(a.current));
}

/** Ends one of the user's own sessions (ending the current one logs out). */
export async function endOwnSession(user: SessionUser, sessionId: string): Promise<void> {
  const { count } = await db.session.deleteMany({ where: { id: String(sessionId).slice(0, 64), userId: user.id } });
  if (count === 0) throw new GuesthouseError("not-found", "There is no such session of yours (it may have ended already).");
}

/**
 * Refuses what would leave the host without an enabled admin; the admins' rows are
 * written first in the transaction (a no-op update), so two admins disabling each other
 * at once under PostgreSQL cannot both pass.
 */
async function assertAnotherAdmin(tx: Tx, userId: string): Promise<void> {
  await tx.user.updateMany({ where: { role: "admin", disabledAt: null }, data: { role: "admin" } });
  const admins = await tx.user.findMany({ where: { role: "admin", disabledAt: null }, select: { id: true } });
  if (admins.length === 1 && admins[0]!.id === userId) throw new GuesthouseError("conflict", "This is the last admin: make someone else an admin first.");
}

/** Disables or enables a user (admins). A disabled user's sessions stop working at once; their guests keep running. */
export async function setDisabled(actor: SessionUser, userId: string, disabled: boolean): Promise<void> {
  if (!canManageHost(actor)) throw new GuesthouseError("forbidden", "Only admins disable and enable users.");
  await db.$transaction(async (tx) => {
    if (disabled) await assertAnotherAdmin(tx, String(userId));
    const { count } = await tx.user.updateMany({ where: { id: String(userId) }, data: { disabledAt: disabled ? new Date() : null } });
    if (count === 0) throw new GuesthouseError("not-found", "There is no such user.");
    if (disabled) await tx.session.deleteMany({ where: { userId: String(userId) } });
  });
}

/** Makes a user an admin of the host, or takes it back (admins; never from the last one). */
export async function setAdmin(actor: SessionUser, userId: string, admin: boolean): Promise<void> {
  if (!canManageHost(actor)) throw new GuesthouseError("forbidden", "Only admins make admins.");
  await db.$transaction(async (tx) => {
    if (!admin) await assertAnotherAdmin(tx, String(userId));
    const { count } = await tx.user.updateMany({ where: { id: String(userId) }, data: { role: admin ? "admin" : "member" } });
    if (count === 0) throw new GuesthouseError("not-found", "There is no such user.");
  });
}

/**
 * Deletes a user (admins) after handing everything they own (guests, disks, networks) to
 * `heirId`, who must belong to every team those are in; nothing of theirs is deleted.
 */
export async function deleteUser(actor: SessionUser, userId: string, heirId: string): Promise<void> {
  if (!canManageHost(actor)) throw new GuesthouseError("forbidden", "Only admins delete users.");
  const id = String(userId);
  const heir = String(heirId);
  if (id === heir) throw new GuesthouseError("invalid-input", "Choose someone else to hand their guests and disks to.");
  await db.$transaction(async (tx) => {
    await assertAnotherAdmin(tx, id);
    if ((await tx.user.count({ where: { id } })) !== 1) throw new GuesthouseError("not-found", "There is no such user.");
    const heirRow = await tx.user.findUnique({ where: { id: heir }, select: { username: true, memberships: { select: { teamId: true } } } });
    if (!heirRow) throw new GuesthouseError("not-found", "There is no such user to hand things to.");
    const owned = await Promise.all([
      tx.guest.findMany({ where: { ownerId: id }, select: { teamId: true } }),
      tx.disk.findMany({ where: { ownerId: id }, select: { teamId: true } }),
      tx.network.findMany({ where: { ownerId: id }, select: { teamId: true } }),
    ]);
    const heirTeams = new Set(heirRow.memberships.map((m) => m.teamId));
    const missing = [...new Set(owned.flat().map((o) => o.teamId))].filter((t) => !heirTeams.has(t));
    if (missing.length) {
      const names = (await tx.team.findMany({ where: { id: { in: missing } }, select: { name: true } })).map((t) => t.name);
      throw new GuesthouseError("conflict", `${heirRow.username} is not in ${names.join(", ")}, where this user has guests, disks or networks. Add them to it first, or choose someone who is.`);
    }
    await tx.guest.updateMany({ where: { ownerId: id }, data: { ownerId: heir } });
    await tx.disk.updateMany({ where: { ownerId: id }, data: { ownerId: heir } });
    await tx.network.updateMany({ where: { ownerId: id }, data: { ownerId: heir } });
    await tx.consoleTicket.deleteMany({ where: { userId: id } });
    await tx.user.delete({ where: { id } });
  });
}

/** Every user, for the admins' users page. */
export function allUsers() {
  return db.user.findMany({
    orderBy: { usernameKey: "asc" },
    select: {
      id: true,
      username: true,
      role: true,
      disabledAt: true,
      mustChangePassword: true,
      totpEnabledAt: true,
      ssoSubject: true,
      memberships: { select: { role: true, team: { select: { id: true, name: true } } } },
      _count: { select: { guests: true, disks: true } },
    },
  });
}

/** A team's open invitations, for its owners and admins. */
export function openInvites(teamId: string) {
  return db.invite.findMany({
    where: { teamId, usedAt: null, revokedAt: null, expiresAt: { gt: new Date() } },
    orderBy: { createdAt: "desc" },
    select: { id: true, role: true, expiresAt: true, createdBy: { select: { username: true } } },
  });
}
