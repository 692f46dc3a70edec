/** ISO images: the host's agent lists them; rows record the ones guests use. */
import { canManageHost } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { isForeignKeyViolation } from "../db/errors";
import { GuesthouseError } from "../domain/errors";
import { agentFor } from "./guests";
import { recordEvent } from "./audit";
import { recordedTask } from "./tasks";

/** The IsoImage row ids for these names, checking each is in the host's image folder now. */
export async function isoRowsFor(host: { id: string; endpoint: string }, names: string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const available = new Map((await agentFor(host).host()).isos.map((i) => [i.name, i]));
  const ids: string[] = [];
  for (const name of names) {
    const iso = available.get(name);
    if (!iso) throw new GuesthouseError("not-found", `The ISO "${name}" is not in the host's image folder. Choose one from the list.`);
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
 * Deletes an ISO image from the host's ISO folder. Admins only: ISOs are shared by
 * everyone on the host. The database decides whether a guest still uses it: the row
 * goes first (Cdrom → IsoImage is restricted, so a guest that took it as its CD-ROM a
 * moment ago makes the delete fail, naming the guests) and only then the file; should
 * the agent fail to remove the file, the row comes back. Nothing is deleted while a
 * guest uses it, and a file that stays keeps its record.
 */
export async function removeIso(user: SessionUser, host: { id: string; endpoint: string }, name: string): Promise<void> {
  if (!canManageHost(user)) throw new GuesthouseError("forbidden", "Only admins delete ISO images: everyone on the host shares them.");
  const usedBy = async () => {
    const users = await db.cdrom.findMany({ where: { iso: { hostId: host.id, name } }, select: { guest: { select: { name: true } } } });
    return [...new Set(users.map((u) => u.guest.name))];
  };
  const row = await db.isoImage.findUnique({ where: { hostId_name: { hostId: host.id, name } } });
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
        .create({ data: { id: row.id, name: row.name, sizeBytes: row.sizeBytes, hostId: row.hostId, seenAt: row.seenAt, sha256: row.sha256 } })
        .catch((e) => console.error(`isos: could not restore the record of ${name}:`, e));
    }
    throw err;
  }
  await recordEvent("iso-delete", true, `deleted ISO ${name}`, user, null).catch(() => {});
}
