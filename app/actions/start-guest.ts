"use server";

import { revalidatePath } from "next/cache";
import { authedAction } from "@/server/web/action";
import { agentFor, loadGuest, recordEvent, specOf } from "@/server/web/guests";

/** Starts the guest's QEMU and returns once QMP answers (or with QEMU's own error). */
export const startGuest = authedAction("start-guest", async (user, guestId: string) => {
  const guest = await loadGuest(user, guestId);
  try {
    const status = await agentFor(guest.host).start(specOf(guest));
    await recordEvent("start", true, `started ${guest.name}`, user.id, guest.id);
    revalidatePath("/");
    return status.state;
  } catch (err) {
    await recordEvent("start", false, `start of ${guest.name} failed: ${(err as Error).message}`, user.id, guest.id);
    throw err;
  }
});
