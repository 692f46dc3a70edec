"use server";

import { revalidatePath } from "next/cache";
import { can, guestNameFor } from "@/server/auth/policy";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { canDo } from "@/server/domain/types";
import { authedAction } from "@/server/web/action";
import { agentFor, liveState, loadGuest } from "@/server/web/guests";
import { recordEvent } from "@/server/web/audit";

/**
 * Deletes a stopped guest, with its disks or leaving them detached on the host. The agent forgets the guest first: from
 * then on it refuses to start it, so no QEMU can be left running on a deleted disk.
 * Then the rows go, then the disk files.
 */
export const deleteGuest = authedAction("delete-guest", async (user, guestId: string, withDisks: boolean) => {
  const guest = await loadGuest(user, guestId, "delete");
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
  revalidatePath("/");
  return null;
});
