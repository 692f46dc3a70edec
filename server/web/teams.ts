/**
 * Teams and their members: made and renamed by admins; members added, given roles and
 * removed by the team's owners and admins (server/auth/policy.ts decides who). Names are
 * normalized (Unicode NFKC, spaces collapsed) and unique regardless of case, so "Ops",
 * "ops" and "ｏｐｓ" are one team: `Team.nameKey` holds the folded name under a unique
 * index, which settles two admins racing for one name in the database itself.
 */
import { z } from "zod";
import { canManageHost, canManageTeam, TEAM_ROLES, type TeamRole } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { recordEvent } from "./audit";
import { isUniqueViolationOn } from "../db/errors";
import { GuesthouseError } from "../domain/errors";
import { nameKey, normalizeName, userNamed } from "../domain/names";
import { parseOrThrow } from "../domain/validation";

/** What a team's name may hold, after normalizing: letters and digits of any script, spaces, '.', '_' and '-'. */
const TEAM_NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,63}$/u;

export const teamName = z
  .string()
  .max(256, "A team's name has at most 64 characters.")
  .transform(normalizeName)
  .pipe(z.string().regex(TEAM_NAME, "A team's name is 1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit."));

const teamRole = z.enum(TEAM_ROLES, { message: `A role is one of ${TEAM_ROLES.join(", ")}.` });

const taken = (name: string) => new GuesthouseError("conflict", `There is already a team named "${name}" (names are the same regardless of case and width). Choose another name.`);

/** Makes a team (admins). */
export async function createTeam(actor: SessionUser, raw: unknown): Promise<{ id: string; name: string }> {
  if (!canManageHost(actor)) throw new GuesthouseError("forbidden", "Only admins make teams.");
  const name = parseOrThrow(teamName, raw, "The team's name");
  try {
    return await db.team.create({ data: { name, nameKey: nameKey(name) }, select: { id: true, name: true } });
  } catch (err) {
    if (isUniqueViolationOn(err, "nameKey") || isUniqueViolationOn(err, "name")) throw taken(name);
    throw err;
  }
}

/** Renames a team (admins). */
export async function renameTeam(actor: SessionUser, teamId: string, raw: unknown): Promise<void> {
  if (!canManageHost(actor)) throw new GuesthouseError("forbidden", "Only admins rename teams.");
  const name = parseOrThrow(teamName, raw, "The team's name");
  try {
    const { count } = await db.team.updateMany({ where: { id: String(teamId) }, data: { name, nameKey: nameKey(name) } });
    if (count === 0) throw new GuesthouseError("not-found", "There is no such team.");
  } catch (err) {
    if (isUniqueViolationOn(err, "nameKey") || isUniqueViolationOn(err, "name")) throw taken(name);
    throw err;
  }
}

/**
 * Gives a user a role in a team (adding them if they were not in it): its owners and
 * admins. The team keeps at least one owner: the last one's role does not change here.
 */
export async function setMembership(actor: SessionUser, teamId: string, username: unknown, rawRole: unknown): Promise<void> {
  const team = String(teamId);
  if (!canManageTeam(actor, team)) throw new GuesthouseError("forbidden", "Only the team's owners and admins manage its members.");
  const role: TeamRole = parseOrThrow(teamRole, rawRole, "The role");
  // The name as typed, or any spelling of it (case, width): one person either way.
  const user = typeof username === "string" && username.length <= 256 ? await db.user.findFirst({ where: userNamed(username), select: { id: true } }) : null;
  if (!user) throw new GuesthouseError("not-found", "There is no user of that name.");
  await db.$transaction(async (tx) => {
    if (role !== "owner") await assertAnotherOwner(tx, team, user.id);
    await tx.membership.upsert({ where: { userId_teamId: { userId: user.id, teamId: team } }, create: { userId: user.id, teamId: team, role }, update: { role } });
  });
  const named = await db.team.findUnique({ where: { id: team }, select: { name: true } });
  await recordEvent("team-role", true, `made ${String(username).slice(0, 64)} a ${role} of ${named?.name ?? "a team"}`, actor, null, { teamId: team, params: { username, role } }).catch(() => {});
}

/** Takes a user out of a team: its owners and admins. Their guests and disks stay the team's. */
export async function removeMembership(actor: SessionUser, teamId: string, userId: string): Promise<void> {
  const team = String(teamId);
  if (!canManageTeam(actor, team)) throw new GuesthouseError("forbidden", "Only the team's owners and admins manage its members.");
  await db.$transaction(async (tx) => {
    await assertAnotherOwner(tx, team, String(userId));
    const { count } = await tx.membership.deleteMany({ where: { teamId: team, userId: String(userId) } });
    if (count === 0) throw new GuesthouseError("not-found", "That user is not in this team.");
  });
  await recordEvent("team-remove", true, "took a member out of the team", actor, null, { teamId: team, params: { userId } }).catch(() => {});
}

type Tx = Parameters<Parameters<typeof db.$transaction>[0]>[0];

/**
 * Refuses leaving the team without an owner when `userId` is one: the check and the change
 * are one transaction, and the owners' rows are written first (a no-op update), so under
 * PostgreSQL two owners demoting each other at once cannot both pass.
 */
async function assertAnotherOwner(tx: Tx, teamId: string, userId: string): Promise<void> {
  await tx.membership.updateMany({ where: { teamId, role: "owner" }, data: { role: "owner" } });
  const owners = await tx.membership.findMany({ where: { teamId, role: "owner" }, select: { userId: true } });
  if (owners.length === 1 && owners[0]!.userId === userId) {
    throw new GuesthouseError("conflict", "This is the team's last owner: make someone else an owner first.");
  }
}

/** The teams `actor` may see on the teams page: all for admins, theirs otherwise; with members for those they manage. */
export async function teamsFor(actor: SessionUser) {
  const teams = await db.team.findMany({
    where: actor.admin ? {} : { id: { in: [...actor.teams.keys()] } },
    orderBy: { nameKey: "asc" },
    select: {
      id: true,
      name: true,
      requireTotp: true,
      memberships: { orderBy: { user: { username: "asc" } }, select: { role: true, user: { select: { id: true, username: true } } } },
      _count: { select: { guests: true, disks: true } },
    },
  });
  return teams.map((t) => ({ ...t, manage: canManageTeam(actor, t.id), memberships: canManageTeam(actor, t.id) || actor.teams.has(t.id) ? t.memberships : [] }));
}
