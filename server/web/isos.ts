/**
 * ISO images: the host's agent lists the files of its ISO folder; rows record who
 * uploaded each (its team, its uploader, its SHA-256), whether an admin published it,
 * and which guests use it. A file without a row, or with a row of no team, is the host's
 * own (put there by its admin) and offered to everyone; an upload is its team's only,
 * until published. Whoever may not see an ISO is told nothing about it.
 */
import { can, canDeleteIso, canManageHost, canPublishIso, guestNameFor, isoOfferedTo } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { isForeignKeyViolation } from "../db/errors";
import { GuesthouseError } from "../domain/errors";
import { agentFor } from "./guests";
import { recordEvent } from "./audit";
import { recordedTask } from "./tasks";

/** An ISO as a page lists it, for one user. */
export interface IsoView {
  name: string;
  sizeBytes: number;
  sha256: string | null;
  /** null: the host's own. */
  team: string | null;
  uploader: string | null;
  published: boolean;
  /** The guests using it that the user may see, and how many others do. */
  usedBy: string[];
  mayDelete: boolean;
  mayPublish: boolean;
  /** An uploaded ISO its team's owners (and admins) may hand to someone: its team's id then. */
  handOverFrom: string | null;
}

/**
 * The ISOs of the host offered to guests of `teamId` (the new-guest and hardware forms'
 * choices, the disks page); for an admin with `all`, every one, so they can publish them.
 */
export async function isosFor(user: SessionUser, host: { id: string; endpoint: string }, teamId: string, options: { all?: boolean } = {}): Promise<IsoView[] | null> {
  const files = await agentFor(host)
    .host()
    .then((h) => h.isos)
    .catch(() => null);
  if (!files) return null;
  const rows = new Map(
    (
      await db.isoImage.findMany({
        where: { hostId: host.id },
        select: {
          name: true,
          sha256: true,
          teamId: true,
          uploaderId: true,
          published: true,
          team: { select: { name: true } },
          uploader: { select: { username: true } },
          cdroms: { select: { guest: { select: { name: true, ownerId: true, teamId: true } } } },
        },
      })
    ).map((r) => [r.name, r]),
  );
  const everything = options.all && canManageHost(user);
  return files
    .filter((f) => everything || isoOfferedTo(rows.get(f.name), teamId))
    .map((f) => {
      const row = rows.get(f.name);
      const guests = (row?.cdroms ?? []).map((c) => c.guest);
      const seen = guests.filter((g) => can(user, "view", g));
      const others = guests.length - seen.length;
      return {
        name: f.name,
        sizeBytes: f.sizeBytes,
        sha256: row?.sha256 ?? null,
        team: row?.team?.name ?? null,
        uploader: row?.uploader?.username ?? null,
        published: row?.published ?? false,
        usedBy: [...new Set(seen.map((g) => g.name)), ...(others > 0 ? [`${others} other guest${others === 1 ? "" : "s"}`] : [])],
        mayDelete: canDeleteIso(user, row),
        mayPublish: canPublishIso(user) && Boolean(row?.teamId),
        handOverFrom: row?.teamId && can(user, "hand-over", { teamId: row.teamId, ownerId: row.uploaderId ?? "" }) ? row.teamId : null,
      };
    });
}

/**
 * The IsoImage row ids for these names, checking each is in the host's image folder now
 * and offered to guests of `teamId` (another team's private ISO is "not there").
 */
export async function isoRowsFor(host: { id: string; endpoint: string }, names: string[], teamId: string): Promise<string[]> {
  if (names.length === 0) return [];
  const available = new Map((await agentFor(host).host()).isos.map((i) => [i.name, i]));
  const rows = new Map((await db.isoImage.findMany({ where: { hostId: host.id, name: { in: names } }, select: { name: true, teamId: true, uploaderId: true, published: true } })).map((r) => [r.name, r]));
  const ids: string[] = [];
  for (const name of names) {
    const iso = available.get(name);
    if (!iso || !isoOfferedTo(rows.get(name), teamId)) throw new GuesthouseError("not-found", `The ISO "${name}" is not in the host's image folder. Choose one from the list.`);
    const row = await db.isoImage.upsert({
      where: { hostId_name: { hostId: host.id, name } },
      create: { hostId: host.id, name, sizeBytes: BigInt(iso.sizeBytes) },
      update: { sizeBytes: BigInt(iso.sizeBytes), seenAt: new Date() },
      select: { id: true },
    });
    ids.push(row.id);
  }
  return ids;
}

/**
 * Deletes an ISO image from the host's ISO folder: admins, and for a team's own upload
 * also its uploader and the team's owners (canDeleteIso). The database decides whether a guest still uses it: the row
 * goes first (Cdrom → IsoImage is restricted, so a guest that took it as its CD-ROM a
 * moment ago makes the delete fail, naming the guests) and only then the file; should
 * the agent fail to remove the file, the row comes back. Nothing is deleted while a
 * guest uses it, and a file that stays keeps its record.
 */
export async function removeIso(user: SessionUser, host: { id: string; endpoint: string }, name: string): Promise<void> {
  const row = await db.isoImage.findUnique({ where: { hostId_name: { hostId: host.id, name } } });
  if (!canDeleteIso(user, row ?? undefined)) {
    if (row && !isoOfferedTo(row, user.teamId) && !canManageHost(user)) throw new GuesthouseError("not-found", `There is no ISO named ${name} for your team.`);
    throw new GuesthouseError("forbidden", "Only admins delete the ISOs every team shares; a team's own ISO, its uploader and the team's owners.");
  }
  const usedBy = async () => {
    const users = await db.cdrom.findMany({ where: { iso: { hostId: host.id, name } }, select: { guest: { select: { name: true, teamId: true, ownerId: true } } } });
    return [...new Set(users.map((u) => guestNameFor(user, u.guest)))];
  };
  if (row) {
    try {
      await db.isoImage.delete({ where: { id: row.id } });
    } catch (err) {
      if (isForeignKeyViolation(err)) {
        throw new GuesthouseError("conflict", `${name} is the CD-ROM of ${(await usedBy()).join(", ") || "a guest"}; remove it from them first.`);
      }
      throw err;
    }
  }
  try {
    await recordedTask(user, host.id, { kind: "delete", title: `delete ISO ${name}` }, () => agentFor(host).deleteIso(name));
  } catch (err) {
    // The file stays: so does its record.
    if (row) {
      await db.isoImage
        .create({ data: row })
        .catch((e) => console.error(`isos: could not restore the record of ${name}:`, e));
    }
    throw err;
  }
  await recordEvent("iso-delete", true, `deleted ISO ${name}`, user, null, { teamId: row?.teamId ?? undefined }).catch(() => {});
}

/** Offers a team's ISO to every team, or takes it back (admins). Guests that use it keep it as their CD-ROM. */
export async function publishIso(user: SessionUser, host: { id: string }, name: string, published: boolean): Promise<void> {
  if (!canPublishIso(user)) throw new GuesthouseError("forbidden", "Only admins publish ISOs to every team.");
  const { count } = await db.isoImage.updateMany({ where: { hostId: host.id, name: String(name).slice(0, 256), teamId: { not: null } }, data: { published: Boolean(published) } });
  if (count === 0) throw new GuesthouseError("not-found", `${String(name).slice(0, 64)} is not an uploaded ISO of this host (the host's own are every team's already).`);
}
