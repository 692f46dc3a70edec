/**
 * What can be done to a guest as a whole, for a user: make one (from the form, a
 * definition, or as a clone), turn it into a template, change its hardware, delete it.
 * The guest pages' server actions (app/actions/) and the REST API (server/web/api/) run
 * these same operations, so the two never differ in what they check or do.
 *
 * A change may name the version of the guest it was made from (`ifMatch`, the API's
 * If-Match): a guest changed since then is refused as stale, never overwritten.
 */
import { createHash } from "node:crypto";
import { can, guestNameFor } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { isUniqueViolationOn } from "../db/errors";
import { GuesthouseError } from "../domain/errors";
import { newMac } from "../domain/ids";
import { canDo } from "../domain/types";
import { createGuestInput, editHardwareInput, guestName, guestSpecSchema, MAX_BACKING_IMAGES, parseOrThrow, type EditHardwareInput, type GuestDefinition } from "../domain/validation";
import { z } from "zod";
import { recordEvent } from "./audit";
import { refOf } from "./disks";
import { assertPortsFree, makeGuest } from "./guest-factory";
import { agentFor, bandwidthColumns, definitionOf, liveState, loadGuest, nicSpecOf, specOf, type GuestRow } from "./guests";
import { localHost } from "./hosts";
import { isoRowsFor } from "./isos";
import { nicNetworks } from "./networks";
import { withinQuota } from "./quotas";
import { refreshPage } from "./refresh";

/** A guest's version as HTTP shows it: changes whenever its row does. */
export function etagOf(guest: { id: string; updatedAt: Date }): string {
  return `"${createHash("sha256").update(`${guest.id}@${guest.updatedAt.toISOString()}`).digest("base64url").slice(0, 22)}"`;
}

/** Refuses a change made from another version of the guest than its present one. */
function assertCurrent(guest: GuestRow, ifMatch: string | undefined): void {
  if (ifMatch === undefined || ifMatch === "*") return;
  const tags = ifMatch.split(",").map((t) => t.trim().replace(/^W\//, ""));
  if (!tags.includes(etagOf(guest))) {
    throw new GuesthouseError("stale", `${guest.name} was changed since you read it. Read it again, then make your change on what it is now.`);
  }
}

/** The create form's few fields, as a definition: one sparse qcow2 disk, one CD-ROM, one user-mode card. */
export function definitionFromForm(raw: unknown): GuestDefinition {
  const input = parseOrThrow(createGuestInput, raw, "The new guest");
  if (input.boot === "cdrom" && !input.iso) throw new GuesthouseError("invalid-input", "To boot from CD-ROM, choose an ISO.");
  if (input.boot === "disk" && input.diskGiB === 0) throw new GuesthouseError("invalid-input", "To boot from disk, give the guest a disk.");
  return {
    guesthouse: 1,
    name: input.name,
    machine: "q35",
    firmware: "bios",
    vcpus: input.vcpus,
    sockets: 1,
    threads: 1,
    memoryMiB: input.memoryMiB,
    bootOrder: input.boot === "cdrom" ? ["cdrom", "disk"] : ["disk", "cdrom"],
    display: "std",
    serial: true,
    rtc: "utc",
    description: "",
    tags: [],
    disks: input.diskGiB > 0 ? [{ sizeGiB: input.diskGiB, format: "qcow2", bus: input.diskBus, cache: "none", readOnly: false }] : [],
    cdroms: input.iso ? [{ iso: input.iso }] : [],
    nics: input.network === "none" ? [] : [{ model: "virtio", network: input.network, isolated: false, forwards: [] }],
  };
}

/** A new guest from a definition (the form's, an imported one, or the API's), with new, empty disks of its sizes. */
export async function createGuest(user: SessionUser, definition: GuestDefinition, how = "created"): Promise<{ id: string }> {
  const guest = await makeGuest(user, await localHost(), definition, undefined, how);
  refreshPage("/");
  return guest;
}

export const cloneInput = z.strictObject({ name: guestName, mode: z.enum(["full", "linked"]) });

/**
 * A running (or paused) guest's cards added or removed in an edit, plugged in and out at
 * once (the agent's hot-plug), before anything is saved; other card changes (a model, a
 * network) wait for its next start like the rest of the hardware. Refused, nothing stays
 * plugged; `undo` puts them back when the save fails after.
 */
async function plugCardsLive(
  guest: GuestRow,
  cards: Array<EditHardwareInput["nics"][number] & { mac: string }>,
  networkIds: string[],
): Promise<{ undo(): Promise<void>; summary: string }> {
  const idle = { undo: async () => {}, summary: "" };
  const { state } = await liveState(guest);
  if (state !== "running" && state !== "paused") return idle;
  const kept = new Set(cards.map((c) => c.mac));
  const had = new Set(guest.nics.map((n) => n.mac));
  const removed = specOf(guest).nics.filter((n) => !kept.has(n.mac));
  const added = cards.flatMap((c, i) => (had.has(c.mac) ? [] : [{ card: c, networkId: networkIds[i]! }]));
  if (removed.length === 0 && added.length === 0) return idle;
  const modes = new Map((await db.network.findMany({ where: { id: { in: added.map((a) => a.networkId) } }, select: { id: true, mode: true } })).map((n) => [n.id, n]));
  const agent = agentFor(guest.host);
  const done: Array<() => Promise<unknown>> = [];
  const undo = async () => {
    for (const step of done.reverse()) await step().catch((err: unknown) => console.error(`edit: ${guest.name}'s cards could not be put back as they were:`, err));
  };
  try {
    for (const card of removed) {
      await agent.unplugNic(guest.id, card.mac);
      done.push(() => agent.plugNic(guest.id, card));
    }
    for (const { card, networkId } of added) {
      await agent.plugNic(guest.id, parseOrThrow(guestSpecSchema.shape.nics.element, nicSpecOf(card, modes.get(networkId)!), "The new card"));
      done.push(() => agent.unplugNic(guest.id, card.mac));
    }
  } catch (err) {
    await undo();
    throw err;
  }
  const words = [...(added.length ? [`${added.length} card(s) plugged in`] : []), ...(removed.length ? [`${removed.length} unplugged`] : [])];
  return { undo, summary: ` (${words.join(", ")} while it ran)` };
}

/**
 * Clone: a new guest with the same hardware and copies of the disks. A full clone
 * copies every disk (sparse); a linked clone, made only from a template, gets thin
 * qcow2 disks backed by the template's, which therefore never change again. Network
 * cards get new MACs and no port forwards (a host port goes to one guest only).
 */
export async function cloneGuest(user: SessionUser, guestId: string, raw: unknown): Promise<{ id: string }> {
  const input = parseOrThrow(cloneInput, raw, "The clone");
  // A template is there to be cloned by whoever may see it; any other guest's disks are
  // copied only by whoever may change it.
  const seen = await loadGuest(user, guestId, "view");
  const source = seen.isTemplate ? seen : await loadGuest(user, guestId, "change");
  if (input.mode === "linked" && !source.isTemplate) {
    throw new GuesthouseError("conflict", "Linked clones are made from templates only: a template's disks never change. Make a full clone, or convert the guest to a template first.");
  }
  // The clone's disks sit on the template's, and on whatever those sit on: the spec says how deep.
  const deepest = Math.max(0, ...specOf(source).disks.map((d) => d.backing.length));
  if (input.mode === "linked" && deepest >= MAX_BACKING_IMAGES) {
    throw new GuesthouseError("conflict", `${source.name}'s disks already sit on ${deepest} base images, as many as a disk may. Make a full clone instead.`);
  }
  const { state } = await liveState(source);
  if (state !== "stopped") {
    throw new GuesthouseError("conflict", `${source.name} is ${state}; shut it down first, so its disks are consistent.`);
  }
  const sources = source.disks.map((d) => ({ kind: input.mode, diskId: d.id, ...refOf(d), sizeBytes: d.sizeBytes }));
  // Host ports can be forwarded to one guest only: the clone's cards start without forwards.
  // A clone made in another team (of a template it may see) cannot use the source team's
  // networks: its cards go on user-mode networking.
  const definition = definitionOf(source, input.name);
  definition.nics = definition.nics.map(({ network, vlan, bandwidth, ...n }) => ({ ...n, ...(source.teamId === user.teamId && network ? { network, ...(vlan !== undefined ? { vlan } : {}), ...(bandwidth ? { bandwidth } : {}) } : {}), forwards: [] }));
  const guest = await makeGuest(user, source.host, definition, sources, `cloned (${input.mode}) from ${source.name} as`);
  refreshPage("/");
  return guest;
}

/**
 * Turns a stopped guest into a template: it can no longer be started or edited, and
 * new guests are cloned from it (linked clones share its disks). There is no way
 * back while linked clones depend on it.
 */
export async function makeTemplate(user: SessionUser, guestId: string, ifMatch?: string): Promise<void> {
  const guest = await loadGuest(user, guestId, "change");
  assertCurrent(guest, ifMatch);
  if (guest.isTemplate) return;
  const { state } = await liveState(guest);
  if (state !== "stopped") throw new GuesthouseError("conflict", `${guest.name} is ${state}; shut it down first.`);
  const { count } = await db.guest.updateMany({ where: { id: guest.id, updatedAt: guest.updatedAt }, data: { isTemplate: true } });
  if (count === 0) throw changedMeanwhile(guest);
  await recordEvent("template", true, `made ${guest.name} a template`, user, guest.id).catch(() => {});
  refreshPage("/");
}

function changedMeanwhile(guest: GuestRow): GuesthouseError {
  return new GuesthouseError("stale", `${guest.name} was changed by someone else just now. Reload it and make your change again.`);
}

/**
 * Saves a guest's hardware. A stopped guest gets it at its next start; a running one
 * shows the difference as pending changes until then. Everything is checked first
 * (the schema's cross-field rules, the disks are this guest's, the ISOs exist, the
 * forwarded host ports are free on the host), then written in one transaction, which
 * writes only the version of the guest that was checked.
 */
export async function editHardware(user: SessionUser, guestId: string, raw: unknown, ifMatch?: string): Promise<void> {
  const input = parseOrThrow(editHardwareInput, raw, "The hardware");
  const guest = await loadGuest(user, guestId, "change");
  assertCurrent(guest, ifMatch);
  if (guest.isTemplate) throw new GuesthouseError("conflict", `${guest.name} is a template; clone it to make a guest you can change.`);

  const own = new Set(guest.disks.map((d) => d.id));
  if (input.disks.length !== own.size || input.disks.some((d) => !own.has(d.id))) {
    throw new GuesthouseError("invalid-input", "The disk list does not match this guest's disks. Reload the page and try again.");
  }
  await assertPortsFree(user, guest.host, guest.id, input.nics.flatMap((n) => n.forwards));
  const isoIds = await isoRowsFor(guest.host, input.cdroms.map((c) => c.iso), guest.teamId);
  const networks = await nicNetworks({ teamId: guest.teamId, ownerId: guest.ownerId, hostId: guest.host.id }, input.nics.map((n) => n.network), input.nics.map((n) => n.vlan));
  // Every card's MAC is fixed before the host is asked anything (a new card's is made now).
  const cards = input.nics.map((n) => ({ ...n, mac: n.mac ?? newMac() }));
  const live = await plugCardsLive(guest, cards, networks);

  try {
    // A running guest's vCPUs and memory count against its team's quotas at once (its
    // next start takes them): growing them is checked like a start.
    const grows = guest.poweredAt
      ? { vcpus: Math.max(0, input.vcpus - guest.vcpus), memoryMiB: Math.max(0, input.memoryMiB - guest.memoryMiB) }
      : {};
    await withinQuota({ teamId: guest.teamId, userId: guest.ownerId }, grows, async (tx) => {
      const { count } = await tx.guest.updateMany({
        where: { id: guest.id, updatedAt: guest.updatedAt },
        data: {
          machine: input.machine,
          firmware: input.firmware,
          vcpus: input.vcpus,
          sockets: input.sockets,
          threads: input.threads,
          memoryMiB: input.memoryMiB,
          bootOrder: input.bootOrder.join(","),
          display: input.display,
          serial: input.serial,
          rtc: input.rtc,
          description: input.description,
          tags: JSON.stringify([...new Set(input.tags)]),
          ...(input.keyboardLayout ? { keyboardLayout: input.keyboardLayout } : {}),
        },
      });
      if (count === 0) throw changedMeanwhile(guest);
      for (const [position, d] of input.disks.entries()) {
        await tx.disk.update({ where: { id: d.id }, data: { bus: d.bus, cache: d.cache, readOnly: d.readOnly, position } });
      }
      await tx.cdrom.deleteMany({ where: { guestId: guest.id } });
      await tx.cdrom.createMany({ data: isoIds.map((isoId, position) => ({ guestId: guest.id, isoId, position })) });
      await tx.nic.deleteMany({ where: { guestId: guest.id } });
      await tx.nic.createMany({
        data: cards.map((n, position) => ({
          guestId: guest.id,
          mac: n.mac,
          model: n.model,
          forwards: JSON.stringify(n.forwards),
          isolated: n.isolated,
          vlan: n.vlan ?? null,
          ...bandwidthColumns(n),
          position,
          networkId: networks[position]!,
        })),
      });
    });
  } catch (err) {
    // Nothing was saved: the cards plugged in or out a moment ago go back as they were.
    await live.undo();
    if (isUniqueViolationOn(err, "mac")) {
      throw new GuesthouseError("conflict", "Another guest already uses one of these MAC addresses. Choose another.");
    }
    throw err;
  }
  await recordEvent("edit", true, `edited the hardware of ${guest.name}${live.summary}`, user, guest.id).catch(() => {});
  refreshPage(`/guests/${guest.id}`);
}

/**
 * Deletes a stopped guest, with its disks or leaving them detached on the host. The agent
 * forgets the guest first: from then on it refuses to start it, so no QEMU can be left
 * running on a deleted disk. Then the rows go, then the disk files.
 */
export async function deleteGuest(user: SessionUser, guestId: string, withDisks: boolean, ifMatch?: string): Promise<{ deletedDisks: number; keptDisks: number }> {
  const guest = await loadGuest(user, guestId, "delete");
  assertCurrent(guest, ifMatch);
  // "With its disks" never takes a disk its deleter may not delete: such a disk stays, free.
  const disks = withDisks === true ? guest.disks.filter((d) => can(user, "delete", d)) : [];
  const agent = agentFor(guest.host);
  const { state } = await liveState(guest);
  if (!canDo(state, "delete")) {
    throw new GuesthouseError("conflict", `${guest.name} is ${state}; stop it before deleting it.`);
  }
  const clones = await db.disk.findMany({
    where: { baseId: { in: guest.disks.map((d) => d.id) } },
    select: { guest: { select: { name: true, ownerId: true, teamId: true } } },
  });
  if (clones.length) {
    const names = [...new Set(clones.map((c) => (c.guest ? guestNameFor(user, c.guest) : "a detached disk")))].join(", ");
    throw new GuesthouseError("conflict", `Linked clones use ${guest.name}'s disks (${names}); delete them first.`);
  }
  await agent.forget(guest.id);
  // Kept disks stay as rows without a guest (the relation sets guestId to null).
  await db.$transaction([
    db.disk.deleteMany({ where: { id: { in: disks.map((d) => d.id) } } }),
    db.guest.delete({ where: { id: guest.id } }),
  ]);

  const leftovers: string[] = [];
  for (const disk of disks) {
    await agent.deleteImage(disk, disk.encrypted ? disk.volume : undefined).catch(() => leftovers.push(disk.file));
  }
  if (leftovers.length) {
    console.error(`delete-guest: ${guest.name}: disk files left on ${guest.host.name}: ${leftovers.join(", ")}`);
  }
  await recordEvent(
    "delete",
    leftovers.length === 0,
    `deleted guest ${guest.name}, ${disks.length - leftovers.length} disk(s) deleted, ${guest.disks.length - disks.length} kept`,
    user,
    null,
    { teamId: guest.teamId, params: { guest: guest.name, withDisks: withDisks === true } },
  ).catch((err) => console.error("delete-guest: could not record the event", err));
  refreshPage("/");
  return { deletedDisks: disks.length - leftovers.length, keptDisks: guest.disks.length - disks.length };
}
