"use server";

import { mintTicket } from "@/server/console/tickets";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { canDo, CONSOLE_WS_PATH } from "@/server/domain/types";
import { authedAction } from "@/server/web/action";
import { liveState, loadGuest } from "@/server/web/guests";

/**
 * Mints a single-use console ticket for this user and guest. The page opens
 * `<same origin><path>?ticket=…` at once; the bridge checks and burns the ticket.
 */
export const openConsole = authedAction("open-console", async (user, guestId: string) => {
  const guest = await loadGuest(user, guestId);
  const { state } = await liveState(guest);
  if (!canDo(state, "console")) {
    throw new GuesthouseError("conflict", `${guest.name} is ${state}; start it to use its console.`);
  }
  const ticket = await mintTicket(db, user.id, guest.id);
  return { path: `${CONSOLE_WS_PATH}/${guest.id}`, ticket: ticket.ticket };
});
