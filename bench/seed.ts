/**
 * Rows for benchmarks: guests as the create form makes them (one disk, one CD-ROM, one
 * NIC each), written in bulk, with every column the schema has (new settings keep their
 * defaults here too).
 */
import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../server/db/client";
import { createTestDb, seedBasics } from "../tests/helpers/db";

export const newId = () => randomBytes(12).toString("hex"); // 24 lowercase hex: a valid guest and volume id
export const macOf = (i: number) => `52:54:00:${[(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;
export const nameOf = (i: number) => `guest-${String(i).padStart(4, "0")}`;

/**
 * A guest row as the tests' own seed makes it, with every column the schema has (so new
 * settings keep their defaults here too): made once in a scratch database.
 */
export async function guestTemplate() {
  const scratch = await createTestDb();
  try {
    const { guest } = await seedBasics(scratch.db);
    const { id: _id, name: _name, ownerId: _o, teamId: _t, hostId: _h, createdAt: _c, updatedAt: _u, ...settings } = guest;
    return settings;
  } finally {
    await scratch.cleanup();
  }
}
export type GuestTemplate = Awaited<ReturnType<typeof guestTemplate>>;

export interface Rows {
  guests: Array<GuestTemplate & { id: string; name: string; vcpus: number; memoryMiB: number; ownerId: string; teamId: string; hostId: string }>;
  disks: Array<{ volume: string; file: string; format: string; bus: string; sizeBytes: bigint; position: number; guestId: string; ownerId: string; teamId: string; hostId: string }>;
  cdroms: Array<{ guestId: string; isoId: string; position: number }>;
  nics: Array<{ mac: string; model: string; position: number; guestId: string; networkId: string }>;
}

/** Rows shaped like app/actions/create-guest.ts makes them: one disk, one CD-ROM, one NIC per guest. */
export function makeRows(
  template: GuestTemplate,
  indexes: number[],
  ctx: { ownerId: string; teamId: string; hostId: string; isoId: string; networkId: string },
  diskGiB: number,
): Rows {
  const rows: Rows = { guests: [], disks: [], cdroms: [], nics: [] };
  for (const i of indexes) {
    const id = newId();
    rows.guests.push({ ...template, id, name: nameOf(i), vcpus: 1 + (i % 4), memoryMiB: 256 * (1 + (i % 8)), ownerId: ctx.ownerId, teamId: ctx.teamId, hostId: ctx.hostId });
    const volume = newId();
    rows.disks.push({ volume, file: `${volume}.qcow2`, format: "qcow2", bus: i % 5 === 0 ? "ide" : "virtio", sizeBytes: BigInt(diskGiB) * 2n ** 30n, position: 0, guestId: id, ownerId: ctx.ownerId, teamId: ctx.teamId, hostId: ctx.hostId });
    rows.cdroms.push({ guestId: id, isoId: ctx.isoId, position: 0 });
    rows.nics.push({ mac: macOf(i), model: "virtio", position: 0, guestId: id, networkId: ctx.networkId });
  }
  return rows;
}

export async function insertRows(db: PrismaClient, rows: Rows): Promise<void> {
  await db.$transaction([
    db.guest.createMany({ data: rows.guests }),
    db.disk.createMany({ data: rows.disks }),
    db.cdrom.createMany({ data: rows.cdroms }),
    db.nic.createMany({ data: rows.nics }),
  ]);
}

