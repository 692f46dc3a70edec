"use server";

import { revalidatePath } from "next/cache";
import { z } from "zod";
import { GuesthouseError } from "@/server/domain/errors";
import { guestName, MAX_BACKING_IMAGES, parseOrThrow } from "@/server/domain/validation";
import { authedAction } from "@/server/web/action";
import { refOf } from "@/server/web/disks";
import { makeGuest } from "@/server/web/guest-factory";
import { definitionOf, liveState, loadGuest, specOf } from "@/server/web/guests";

const cloneInput = z.strictObject({ name: guestName, mode: z.enum(["full", "linked"]) });

/**
 * Clone: a new guest with the same hardware and copies of the disks. A full clone
 * copies every disk (sparse); a linked clone, made only from a template, gets thin
 * qcow2 disks backed by the template's, which therefore never change again. Network
 * cards get new MACs and no port forwards (a host port goes to one guest only).
 */
export const cloneGuest = authedAction("clone-guest", async (user, guestId: string, raw: unknown) => {
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
  const definition = definitionOf(source, input.name);
  definition.nics = definition.nics.map((n) => ({ ...n, forwards: [] }));
  const guest = await makeGuest(user, source.host, definition, sources, `cloned (${input.mode}) from ${source.name} as`);
  revalidatePath("/");
  return guest;
});
