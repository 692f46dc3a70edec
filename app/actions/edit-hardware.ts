"use server";

import { authedAction } from "@/server/web/action";
import { editHardware as edit } from "@/server/web/guest-ops";

/** Saves a guest's hardware (server/web/guest-ops.ts). */
export const editHardware = authedAction("edit-hardware", async (user, guestId: string, raw: unknown) => {
  await edit(user, guestId, raw);
  return null;
});
