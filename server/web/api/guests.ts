/** The API's guests: the list a user may see (paged), one guest (with its ETag), and power actions. */
import { createHash } from "node:crypto";
import type { z } from "zod";
import { ownedWhere } from "../../auth/policy";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import { GuesthouseError } from "../../domain/errors";
import type { PowerAction } from "../../domain/types";
import { guestListQuery } from "../guest-list";
import { liveState, liveStates, loadGuest } from "../guests";
import { powerGuest } from "../power";
import type { guestDetail, guestList, guestSummary } from "./schemas";

export const PAGE_SIZE_MAX = 500;

const tagsOf = (text: string) => JSON.parse(text) as string[];

/** A page of the guests `user` may see, in name order, with their live state (one agent call per host). */
export async function listGuests(user: SessionUser, page: number, pageSize: number): Promise<z.infer<typeof guestList>> {
  const [rows, total] = await Promise.all([guestListQuery(db, user, page, pageSize), db.guest.count({ where: ownedWhere(user, "view") })]);
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
  const state = await liveState(g).then(
    (s) => s.state,
    () => null,
  );
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
    nics: g.nics.map((n) => ({ mac: n.mac, model: n.model })),
    updatedAt: g.updatedAt.toISOString(),
  };
  return { guest, etag: etagOf(g.id, g.updatedAt) };
}

/** A weak validator would do for reads; writes compare it exactly (If-Match). */
export function etagOf(id: string, updatedAt: Date): string {
  return `"${createHash("sha256").update(`${id}@${updatedAt.toISOString()}`).digest("base64url").slice(0, 22)}"`;
}

/** A power action through the same operation as the guest page's buttons. */
export async function powerAction(user: SessionUser, id: string, action: PowerAction, bootMenu?: boolean): Promise<{ state: string }> {
  if (typeof id !== "string" || id.length > 64) throw new GuesthouseError("not-found", "This guest does not exist, or you may not see it.");
  return { state: await powerGuest(user, id, action, bootMenu === undefined ? undefined : { bootMenu }) };
}
