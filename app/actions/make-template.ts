"use server";

import { revalidatePath } from "next/cache";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { authedAction } from "@/server/web/action";
import { liveState, loadGuest } from "@/server/web/guests";
import { recordEvent } from "@/server/web/audit";

/**
 * Turns a stopped guest into a template: it can no longer be started or edited, and
 * new guests are cloned from it (linked clones share its disks). There is no way
 * back while linked clones depend on it.
 */
export const makeTemplate = authedAction("make-template", async (user, guestId: string) => {
  const guest = await loadGuest(user, guestId, "change");
  if (guest.isTemplate) return null;
  const { state } = await liveState(guest);
  if (state !== "stopped") throw new GuesthouseError("conflict", `${guest.name} is ${state}; shut it down first.`);
  await db.guest.update({ where: { id: guest.id }, data: { isTemplate: true } });
  await recordEvent("template", true, `made ${guest.name} a template`, user, guest.id).catch(() => {});
  revalidatePath("/");
  return null;
});
