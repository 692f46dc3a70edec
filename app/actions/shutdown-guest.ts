"use server";

import { revalidatePath } from "next/cache";
import { authedAction } from "@/server/web/action";
import { agentFor, loadGuest, recordEvent } from "@/server/web/guests";

/** Presses the guest's ACPI power button; the guest powers off when it is ready. */
export const shutdownGuest = authedAction("shutdown-guest", async (user, guestId: string) => {
  const guest = await loadGuest(user, guestId);
  const status = await agentFor(guest.host).shutdown(guest.id);
  await recordEvent("shutdown", true, `asked ${guest.name} to shut down`, user.id, guest.id);
  revalidatePath("/");
  return status.state;
});
