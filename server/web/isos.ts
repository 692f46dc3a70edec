/** ISO images: the host's agent lists them; rows record the ones guests use. */
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import { agentFor } from "./guests";

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
