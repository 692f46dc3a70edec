"use server";

import { revalidatePath } from "next/cache";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { canDo, type DiskFormat } from "@/server/domain/types";
import { authedAction } from "@/server/web/action";
import { agentFor, liveState, loadGuest, recordEvent } from "@/server/web/guests";

/** Deletes a stopped guest with its disks. The database row goes first: it is the record of truth. */
export const deleteGuest = authedAction("delete-guest", async (user, guestId: string) => {
  const guest = await loadGuest(user, guestId);
  const { state } = await liveState(guest);
  if (!canDo(state, "delete")) {
    throw new GuesthouseError("conflict", `${guest.name} is ${state}; stop it before deleting it.`);
  }
  const agent = agentFor(guest.host);
  await db.$transaction([db.disk.deleteMany({ where: { guestId: guest.id } }), db.guest.delete({ where: { id: guest.id } })]);
  await recordEvent("delete", true, `deleted guest ${guest.name} and ${guest.disks.length} disk(s)`, user.id, null);
  const leftovers: string[] = [];
  await agent.forget(guest.id).catch(() => leftovers.push("state folder"));
  for (const disk of guest.disks) {
    await agent.deleteVolume(disk.volume, disk.format as DiskFormat).catch(() => leftovers.push(`disk ${disk.volume}`));
  }
  if (leftovers.length) console.error(`delete-guest: ${guest.name}: could not remove ${leftovers.join(", ")} on ${guest.host.name}`);
  revalidatePath("/");
  return null;
});
