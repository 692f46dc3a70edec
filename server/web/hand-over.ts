/**
 * Handing a guest, a disk or an uploaded ISO to another person, in the same team or
 * another: its team's owners and admins may (the policy's "hand-over"), into teams they
 * own. The new owner must be able to own it there (an owner, operator or member of that
 * team). A guest takes its disks with it (a disk goes only into its own owner's guests)
 * and, into another team, its network cards move to that team's network; a disk in a
 * guest goes with its guest, not alone. What arrives counts against the receiving team's
 * and member's quotas, checked in the transaction that moves it.
 */
import { assertCan, canManageTeam, mayOwnIn, ownedTeams } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import { userNamed } from "../domain/names";
import { recordEvent } from "./audit";
import { userModeNetwork } from "./networks";
import { withinQuota } from "./quotas";

/** The user, and the team (default: the thing's own), who will own it. */
async function newOwner(username: unknown, teamId: string): Promise<{ id: string; username: string }> {
  const name = typeof username === "string" ? username.slice(0, 64) : "";
  const user = await db.user.findFirst({
    where: { ...userNamed(name), disabledAt: null },
    select: { id: true, username: true, memberships: { where: { teamId }, select: { role: true } } },
  });
  if (!user) throw new GuesthouseError("not-found", "There is no user of that name.");
  const role = user.memberships[0]?.role;
  if (!role) throw new GuesthouseError("invalid-input", `${user.username} is not in that team; add them to it first.`);
  if (!mayOwnIn(role)) throw new GuesthouseError("invalid-input", `${user.username} is a ${role} of that team and owns nothing there; give them another role first.`);
  return user;
}

/** The team it goes into: its own, or one the actor may hand things into (one they own; any, for an admin). */
function targetTeam(actor: SessionUser, fromTeamId: string, toTeamId: string | undefined): string {
  const teamId = toTeamId ? String(toTeamId) : fromTeamId;
  if (teamId !== fromTeamId && !canManageTeam(actor, teamId)) throw new GuesthouseError("forbidden", "You may hand things only into teams you own.");
  return teamId;
}

export async function handOverGuest(actor: SessionUser, guestId: string, username: unknown, toTeamId?: string): Promise<void> {
  const guest = await db.guest.findUnique({ where: { id: String(guestId).slice(0, 64) }, select: { id: true, name: true, teamId: true, ownerId: true, hostId: true, poweredAt: true, vcpus: true, memoryMiB: true } });
  if (!guest) throw new GuesthouseError("not-found", "This guest does not exist, or you may not see it.");
  assertCan(actor, "hand-over", guest, "Only the team's owners and admins hand guests over.");
  const teamId = targetTeam(actor, guest.teamId, toTeamId);
  const to = await newOwner(username, teamId);
  const network = teamId === guest.teamId ? null : await userModeNetwork({ teamId, ownerId: to.id, hostId: guest.hostId });
  const disks = await db.disk.aggregate({ where: { guestId: guest.id }, _sum: { sizeBytes: true, snapshotCount: true } });
  const arriving = {
    guests: 1,
    diskBytes: Number(disks._sum.sizeBytes ?? 0n),
    snapshots: disks._sum.snapshotCount ?? 0,
    ...(guest.poweredAt ? { vcpus: guest.vcpus, memoryMiB: guest.memoryMiB } : {}),
  };
  await withinQuota({ teamId, userId: to.id }, arriving, async (tx) => {
    if (teamId !== guest.teamId && (await tx.guest.count({ where: { teamId, name: guest.name } })) > 0) {
      throw new GuesthouseError("conflict", `That team already has a guest named "${guest.name}"; rename one of them first.`);
    }
    await tx.guest.update({ where: { id: guest.id }, data: { ownerId: to.id, teamId } });
    await tx.disk.updateMany({ where: { guestId: guest.id }, data: { ownerId: to.id, teamId } });
    if (network) await tx.nic.updateMany({ where: { guestId: guest.id }, data: { networkId: network.id, vlan: null } });
  }, { memberOnly: teamId === guest.teamId });
  await recordEvent("hand-over", true, `handed ${guest.name} and its disks to ${to.username}`, actor, guest.id, { teamId, params: { to: to.username, fromTeam: guest.teamId } }).catch(() => {});
}

export async function handOverDisk(actor: SessionUser, diskId: string, username: unknown, toTeamId?: string): Promise<void> {
  const disk = await db.disk.findUnique({ where: { id: String(diskId).slice(0, 64) }, select: { id: true, file: true, teamId: true, ownerId: true, guestId: true, sizeBytes: true, snapshotCount: true } });
  if (!disk) throw new GuesthouseError("not-found", "This disk does not exist, or you may not see it.");
  assertCan(actor, "hand-over", disk, "Only the team's owners and admins hand disks over.");
  if (disk.guestId) throw new GuesthouseError("conflict", `${disk.file} is in a guest: hand the guest over (its disks go with it), or detach the disk first.`);
  const teamId = targetTeam(actor, disk.teamId, toTeamId);
  const to = await newOwner(username, teamId);
  await withinQuota(
    { teamId, userId: to.id },
    { diskBytes: Number(disk.sizeBytes), snapshots: disk.snapshotCount },
    (tx) => tx.disk.update({ where: { id: disk.id }, data: { ownerId: to.id, teamId } }),
    { memberOnly: teamId === disk.teamId },
  );
  await recordEvent("hand-over", true, `handed the disk ${disk.file} to ${to.username}`, actor, null, { teamId, params: { to: to.username, fromTeam: disk.teamId } }).catch(() => {});
}

/** Hands an uploaded ISO (its team's) to someone, in its team or another the actor owns. The host's own ISOs are no one's to hand. */
export async function handOverIso(actor: SessionUser, host: { id: string }, name: string, username: unknown, toTeamId?: string): Promise<void> {
  const iso = await db.isoImage.findUnique({ where: { hostId_name: { hostId: host.id, name: String(name).slice(0, 256) } }, select: { id: true, name: true, teamId: true, uploaderId: true, sizeBytes: true } });
  if (!iso?.teamId) throw new GuesthouseError("not-found", "There is no uploaded ISO of that name for your team (the host's own ISOs are everyone's, no one's to hand over).");
  assertCan(actor, "hand-over", { teamId: iso.teamId, ownerId: iso.uploaderId ?? "" }, "Only the team's owners and admins hand ISOs over.");
  const teamId = targetTeam(actor, iso.teamId, toTeamId);
  const to = await newOwner(username, teamId);
  await withinQuota(
    { teamId, userId: to.id },
    { isoBytes: Number(iso.sizeBytes) },
    (tx) => tx.isoImage.update({ where: { id: iso.id }, data: { teamId, uploaderId: to.id } }),
    { memberOnly: teamId === iso.teamId },
  );
  await recordEvent("hand-over", true, `handed the ISO ${iso.name} to ${to.username}`, actor, null, { teamId, params: { to: to.username, fromTeam: iso.teamId, iso: iso.name } }).catch(() => {});
}

/** The teams `actor` may hand things into: those they own (every team, for an admin). */
export function handOverTeamsFor(actor: SessionUser) {
  return db.team.findMany({ where: actor.admin ? {} : { id: { in: ownedTeams(actor) } }, select: { id: true, name: true }, orderBy: { name: "asc" } });
}
