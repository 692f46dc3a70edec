"use server";

import { consoleAvailability, unavailable, type ConsoleOpening } from "@/server/console/availability";
import { mintTicket } from "@/server/console/tickets";
import { CONSOLE_WS_PATHS, isConsoleKind, type ConsoleKind } from "@/server/console/types";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { authedAction } from "@/server/web/action";
import { liveState, loadGuest } from "@/server/web/guests";

/**
 * Mints a single-use ticket for this user, guest and console (the screen or the
 * serial port), view-only if asked. The page opens `<same origin><path>?ticket=…`
 * at once; the bridge checks and burns the ticket. A guest that is off or starting
 * gets no ticket but its state, so the page can say so and wait.
 */
export const openConsole = authedAction(
  "open-console",
  async (user, guestId: string, options: { kind?: ConsoleKind; viewOnly?: boolean } = {}): Promise<ConsoleOpening> => {
    const kind = options.kind ?? "vnc";
    if (!isConsoleKind(kind)) throw new GuesthouseError("invalid-input", "There is no such console.");
    const viewOnly = options.viewOnly === true;
    // Watching (view-only) and operating are separate rights: a team's viewer may only watch.
    const guest = await loadGuest(user, guestId, viewOnly ? "watch" : "operate");
    if (kind === "serial" && !guest.serial) {
      throw new GuesthouseError("conflict", `${guest.name} has no serial console; turn it on in its hardware (applies at the next start).`);
    }
    const { state } = await liveState(guest);
    if (consoleAvailability(state) !== "ready") return unavailable(guest.name, state);
    const ticket = await mintTicket(db, user.id, guest.id, new Date(), { kind, viewOnly });
    return { status: "ticket", path: `${CONSOLE_WS_PATHS[kind]}/${guest.id}`, ticket: ticket.ticket, viewOnly };
  },
);
