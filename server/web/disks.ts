/**
 * The web's view of disk images: database rows (who owns an image, which guest
 * uses it) joined with what the host's agent says about the file (format, sizes,
 * backing chain, snapshots). One agent call per host lists every image.
 */
import { notFound } from "next/navigation";
import type { DiskRef } from "../agent-client";
import { assertCan, guestNameFor, ownedWhere, refusalFor, type Action } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import { isDiskFormat, type ImageInfo } from "../domain/types";

export const diskInclude = {
  host: { select: { id: true, name: true, endpoint: true } },
  owner: { select: { username: true } },
  guest: { select: { id: true, name: true, ownerId: true, teamId: true } },
  base: { select: { id: true, file: true } },
  clones: { select: { id: true, file: true, guest: { select: { name: true, ownerId: true, teamId: true } } } },
};

export type DiskRow = NonNullable<Awaited<ReturnType<typeof findDisk>>>;

function findDisk(user: SessionUser, id: string) {
  return db.disk.findFirst({ where: { id, ...ownedWhere(user, "view") }, include: diskInclude });
}

/** The disk if this user may do `action` to it (see loadGuest); "not found" when they may not see it. */
export async function loadDisk(user: SessionUser, id: string, action: Action): Promise<DiskRow> {
  const disk = typeof id === "string" && id.length <= 64 ? await findDisk(user, id) : null;
  if (!disk) throw new GuesthouseError("not-found", "This disk does not exist, or you may not see it.");
  assertCan(user, action, disk, refusalFor("disk", action));
  return disk;
}

export async function loadDiskOr404(user: SessionUser, id: string, action: Action = "view"): Promise<DiskRow> {
  try {
    return await loadDisk(user, id, action);
  } catch (err) {
    if (err instanceof GuesthouseError && err.code === "not-found") notFound();
    throw err;
  }
}

/** A disk row's image, with the format it was registered in: the agent opens it as that, never by a guess. */
export function refOf(disk: { pool: string; file: string; format: string }): DiskRef {
  if (!isDiskFormat(disk.format)) throw new GuesthouseError("internal", `The disk ${disk.file} has the unknown format "${disk.format}" in the database.`);
  return { pool: disk.pool, file: disk.file, format: disk.format };
}

/** The volume whose passphrase opens an encrypted disk (undefined for plain ones). */
export const secretOf = (disk: { encrypted: boolean; volume: string }) => (disk.encrypted ? disk.volume : undefined);

/** The linked clones based on a disk, named as this user may be told (guestNameFor); a kept disk by its file. */
export function cloneNames(disk: DiskRow, user: SessionUser): string[] {
  return disk.clones.map((c) => (c.guest ? guestNameFor(user, c.guest) : c.file));
}

/** Refuses changing a disk that a linked clone uses as its base (the clone would break). */
export function assertNoClones(disk: DiskRow, doing: string, user: SessionUser): void {
  if (disk.clones.length) {
    const names = cloneNames(disk, user).join(", ");
    throw new GuesthouseError("conflict", `Linked clones are based on ${disk.file} (${names}); it must stay unchanged, so you cannot ${doing}.`);
  }
}

/**
 * Keeps the row's cached facts in step with the file after an operation. Not its
 * format: that was fixed when the disk was made or registered, and QEMU always opens
 * the disk with it. What qemu-img guesses now could be wrong on purpose (a guest can
 * write a qcow2 header, backing file and all, into its own raw disk).
 */
export async function refreshDisk(diskId: string, info: ImageInfo): Promise<void> {
  await db.disk.update({ where: { id: diskId }, data: diskFacts(info) });
}

/** The columns refreshDisk keeps in step with the file. */
export function diskFacts(info: ImageInfo) {
  return { sizeBytes: BigInt(info.virtualBytes), encrypted: info.encrypted, snapshotCount: info.snapshots.length };
}
