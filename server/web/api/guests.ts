/**
 * The API's guests as it shows them: a page of summaries, and one guest with its ETag.
 * Changes run the pages' own operations (guest-ops.ts, power.ts).
 */
import type { z } from "zod";
import { ownedWhere } from "../../auth/policy";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import type { Prisma } from "../../db/generated/client";
import { etagOf } from "../guest-ops";
import { cardAddresses, guestSummaryQuery } from "../guest-list";
import { liveState, liveStates, loadGuest } from "../guests";
import type { guestDetail, guestList, guestSummary } from "./schemas";

const tagsOf = (text: string) => JSON.parse(text) as string[];

export interface GuestFilter {
  q?: string;
  team?: string;
  tag?: string;
  template?: "true" | "false";
}

/** The filter's rows, within what `user` may see. Portable SQL: `contains` is LIKE on both databases. */
function filterWhere(f: GuestFilter): Prisma.GuestWhereInput {
  return {
    ...(f.q ? { name: { contains: f.q } } : {}),
    ...(f.team ? { teamId: f.team } : {}),
    // Tags are kept as a JSON array of plain words: the quoted tag matches that element only.
    ...(f.tag ? { tags: { contains: JSON.stringify(f.tag) } } : {}),
    ...(f.template ? { isTemplate: f.template === "true" } : {}),
  };
}

/** A page of the guests `user` may see, in name order, with their live state (one agent call per host). */
export async function listGuests(user: SessionUser, page: number, pageSize: number, filter: GuestFilter = {}): Promise<z.infer<typeof guestList>> {
  const where = filterWhere(filter);
  const [rows, total] = await Promise.all([guestSummaryQuery(db, user, page, pageSize, where), db.guest.count({ where: { AND: [ownedWhere(user, "view"), where] } })]);
  const states = await liveStates(rows);
  const items: Array<z.infer<typeof guestSummary>> = rows.map((g) => ({
    id: g.id,
    name: g.name,
    state: states.get(g.id)?.state ?? null,
    vcpus: g.vcpus,
    memoryMiB: g.memoryMiB,
    isTemplate: g.isTemplate,
    tags: tagsOf(g.tags),
    owner: g.owner.username,
    team: g.team,
    host: g.host.name,
  }));
  return { items, page, pageSize, total };
}

/** One guest as the API shows it, and its ETag (which changes whenever its row does). */
export async function showGuest(user: SessionUser, id: string): Promise<{ guest: z.infer<typeof guestDetail>; etag: string }> {
  const g = await loadGuest(user, id, "view");
  const team = await db.team.findUniqueOrThrow({ where: { id: g.teamId }, select: { id: true, name: true } });
  const status = await liveState(g).catch(() => null);
  const state = status?.state ?? null;
  const guest: z.infer<typeof guestDetail> = {
    id: g.id,
    name: g.name,
    state,
    vcpus: g.vcpus,
    memoryMiB: g.memoryMiB,
    isTemplate: g.isTemplate,
    tags: tagsOf(g.tags),
    owner: g.owner.username,
    team,
    host: g.host.name,
    machine: g.machine,
    firmware: g.firmware,
    sockets: g.sockets,
    threads: g.threads,
    bootOrder: g.bootOrder.split(",").filter(Boolean),
    display: g.display,
    serial: g.serial,
    description: g.description,
    disks: g.disks.map((d) => ({ id: d.id, file: d.file, format: d.format, bus: d.bus, sizeBytes: Number(d.sizeBytes), readOnly: d.readOnly })),
    cdroms: g.cdroms.map((c) => ({ iso: c.iso.name })),
    nics: g.nics.map((n) => ({ mac: n.mac, model: n.model, addresses: cardAddresses(status, n.mac) })),
    updatedAt: g.updatedAt.toISOString(),
  };
  return { guest, etag: etagOf(g) };
}
