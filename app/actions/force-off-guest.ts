"use server";

import { revalidatePath } from "next/cache";
import { authedAction } from "@/server/web/action";
import { agentFor, loadGuest, recordEvent } from "@/server/web/guests";

/** Stops the guest's QEMU at once, like pulling the plug. */
export const forceOffGuest = authedAction("force-off-guest", async (user, guestId: string) => {
  const guest = await loadGuest(user, guestId);
  const status = await agentFor(guest.host).forceOff(guest.id);
  await recordEvent("force-off", true, `forced ${guest.name} off`, user.id, guest.id);
  revalidatePath("/");
  return status.state;
});
