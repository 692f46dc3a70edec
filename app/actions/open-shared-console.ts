"use server";

import { consoleAvailability, unavailable, type ConsoleOpening } from "@/server/console/availability";
import { findShare } from "@/server/console/shares";
import { mintShareTicket } from "@/server/console/tickets";
import { CONSOLE_WS_PATHS } from "@/server/console/types";
import { db } from "@/server/db/client";
import { toGuesthouseError, type ErrorCode } from "@/server/domain/errors";
import type { ActionResult } from "@/server/web/action";
import { liveState } from "@/server/web/guests";

/**
 * The one console action that needs no login: whoever holds a working view-only
 * link gets a view-only screen ticket bound to that link. The link is checked here
 * and again by the bridge (it may be revoked in between).
 */
export async function openSharedConsole(token: string): Promise<ActionResult<ConsoleOpening>> {
  try {
    const found = await findShare(db, typeof token === "string" ? token : null);
    if (!found.ok) {
      const code: ErrorCode = found.reason === "malformed" || found.reason === "unknown" ? "not-found" : "forbidden";
      const error = found.reason === "malformed" || found.reason === "unknown" ? "This link does not exist." : `This link was ${found.reason}.`;
      return { ok: false, code, error };
    }
    const guest = await db.guest.findUniqueOrThrow({
      where: { id: found.share.guestId },
      select: { id: true, name: true, host: { select: { endpoint: true } } },
    });
    const { state } = await liveState(guest);
    if (consoleAvailability(state) !== "ready") return { ok: true, data: unavailable(guest.name, state) };
    const ticket = await mintShareTicket(db, found.share.id, guest.id);
    return { ok: true, data: { status: "ticket", path: `${CONSOLE_WS_PATHS.vnc}/${guest.id}`, ticket: ticket.ticket, viewOnly: true } };
  } catch (err) {
    const error = toGuesthouseError(err);
    console.error(`action open-shared-console failed: ${error.code}: ${error.message}${error.detail ? `\n${error.detail}` : ""}`);
    return { ok: false, code: error.code, error: error.message };
  }
}
