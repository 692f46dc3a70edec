"use server";

import { authedAction } from "@/server/web/action";
import { deleteGuest as remove } from "@/server/web/guest-ops";

/** Deletes a stopped guest, with its disks or keeping them (server/web/guest-ops.ts). */
export const deleteGuest = authedAction("delete-guest", async (user, guestId: string, withDisks: boolean) => {
  await remove(user, guestId, withDisks === true);
  return null;
});
