/**
 * Opening a guest's consoles, and its view-only links, for a user: the console page's
 * server actions (app/actions/) and the REST API run these same operations.
 */
import type { SessionUser } from "../auth/sessions";
import { consoleAvailability, unavailable, type ConsoleOpening } from "../console/availability";
import { createShare, listShares, revokeShare } from "../console/shares";
import { mintTicket } from "../console/tickets";
import { CONSOLE_WS_PATHS, isConsoleKind, isShareDuration, SHARE_DURATION_NAMES, SHARE_LABEL_MAX, SHARE_PATH, type ConsoleKind, type ShareDuration, type ShareView } from "../console/types";
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import { recordEvent } from "./audit";
import { liveState, loadGuest } from "./guests";
import { refreshPage } from "./refresh";

/**
 * Mints a single-use ticket for this user, guest and console (the screen or the
 * serial port), view-only if asked. The caller opens `<same origin><path>?ticket=…`
 * at once; the bridge checks and burns the ticket. A guest that is off or starting
 * gets no ticket but its state, so the caller can say so and wait.
 */
export async function openConsole(user: SessionUser, guestId: string, options: { kind?: ConsoleKind; viewOnly?: boolean } = {}): Promise<ConsoleOpening> {
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
}

/**
 * Makes a view-only link to the guest's screen, valid 1, 8 or 24 hours. The link's
 * token is returned this once (only its hash is kept).
 */
export async function createShareLink(user: SessionUser, guestId: string, duration: ShareDuration, label: string = ""): Promise<{ path: string; expiresAt: string }> {
  if (!isShareDuration(duration)) throw new GuesthouseError("invalid-input", "Choose how long the link works: 1, 8 or 24 hours.");
  if (typeof label !== "string" || label.length > SHARE_LABEL_MAX) {
    throw new GuesthouseError("invalid-input", `The label can have at most ${SHARE_LABEL_MAX} characters.`);
  }
  const guest = await loadGuest(user, guestId, "share");
  const share = await createShare(db, { guestId: guest.id, createdById: user.id, duration, label });
  await recordEvent("console-share", true, `shared the screen of ${guest.name} view-only for ${SHARE_DURATION_NAMES[duration]}`, user, guest.id).catch(() => {});
  refreshPage(`/guests/${guest.id}/console`);
  return { path: `${SHARE_PATH}/${share.token}`, expiresAt: share.expiresAt.toISOString() };
}

/** Ends a view-only link at once; anyone watching through it is disconnected within seconds. */
export async function revokeShareLink(user: SessionUser, guestId: string, shareId: string): Promise<void> {
  if (typeof shareId !== "string" || !/^[0-9a-f]{64}$/.test(shareId)) throw new GuesthouseError("invalid-input", "There is no such link.");
  const guest = await loadGuest(user, guestId, "share");
  const revoked = await revokeShare(db, guest.id, shareId);
  if (!revoked) throw new GuesthouseError("conflict", "This link no longer works (it expired or was revoked already).");
  await recordEvent("console-share-revoke", true, `revoked a view-only link to ${guest.name}`, user, guest.id).catch(() => {});
  refreshPage(`/guests/${guest.id}/console`);
}

/** The guest's view-only links, for whoever may make them. */
export async function sharesOf(user: SessionUser, guestId: string): Promise<ShareView[]> {
  const guest = await loadGuest(user, guestId, "share");
  return listShares(db, guest.id);
}
