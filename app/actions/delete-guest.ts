"use server";

import { revalidatePath } from "next/cache";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { canDo, type DiskFormat } from "@/server/domain/types";
import { authedAction } from "@/server/web/action";
import { agentFor, liveState, loadGuest, recordEvent } from "@/server/web/guests";

/**
 * Deletes a stopped guest with its disks. The agent forgets the guest first: from
 * then on it refuses to start it, so no QEMU can be left running on a deleted disk.
 * Then the rows go, then the disk files.
 */
export const deleteGuest = authedAction("delete-guest", async (user, guestId: string) => {
  const guest = await loadGuest(user, guestId);
  const agent = agentFor(guest.host);
  const { state } = await liveState(guest);
  if (!canDo(state, "delete")) {
    throw new GuesthouseError("conflict", `${guest.name} is ${state}; stop it before deleting it.`);
  }
  await agent.forget(guest.id);
  await db.$transaction([db.disk.deleteMany({ where: { guestId: guest.id } }), db.guest.delete({ where: { id: guest.id } })]);

  const leftovers: string[] = [];
  for (const disk of guest.disks) {
    await agent.deleteVolume(disk.volume, disk.format as DiskFormat).catch(() => leftovers.push(disk.volume));
  }
  if (leftovers.length) {
    console.error(`delete-guest: ${guest.name}: disk files left on ${guest.host.name}: ${leftovers.join(", ")}`);
  }
  await recordEvent(
    "delete",
    leftovers.length === 0,
    `deleted guest ${guest.name} and ${guest.disks.length - leftovers.length} of ${guest.disks.length} disk(s)`,
    user.id,
    null,
  ).catch((err) => console.error("delete-guest: could not record the event", err));
  revalidatePath("/");
  return null;
});
