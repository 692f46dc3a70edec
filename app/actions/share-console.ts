"use server";

import { revalidatePath } from "next/cache";
import type { SessionUser } from "@/server/auth/sessions";
import { createShare, revokeShare } from "@/server/console/shares";
import { isShareDuration, SHARE_DURATION_NAMES, SHARE_LABEL_MAX, SHARE_PATH, type ShareDuration } from "@/server/console/types";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { authedAction } from "@/server/web/action";
import { loadGuest } from "@/server/web/guests";
import { recordEvent } from "@/server/web/audit";

function ownedGuest(user: SessionUser, guestId: string) {
  return loadGuest(user, guestId, "share");
}

/**
 * Makes a view-only link to the guest's screen, valid 1, 8 or 24 hours. The link's
 * token is returned this once (only its hash is kept).
 */
export const createShareLink = authedAction("share-console", async (user, guestId: string, duration: ShareDuration, label: string = "") => {
  if (!isShareDuration(duration)) throw new GuesthouseError("invalid-input", "Choose how long the link works: 1, 8 or 24 hours.");
  if (typeof label !== "string" || label.length > SHARE_LABEL_MAX) {
    throw new GuesthouseError("invalid-input", `The label can have at most ${SHARE_LABEL_MAX} characters.`);
  }
  const guest = await ownedGuest(user, guestId);
  const share = await createShare(db, { guestId: guest.id, createdById: user.id, duration, label });
  await recordEvent("console-share", true, `shared the screen of ${guest.name} view-only for ${SHARE_DURATION_NAMES[duration]}`, user, guest.id).catch(() => {});
  revalidatePath(`/guests/${guest.id}/console`);
  return { path: `${SHARE_PATH}/${share.token}`, expiresAt: share.expiresAt.toISOString() };
});

/** Ends a view-only link at once; anyone watching through it is disconnected within seconds. */
export const revokeShareLink = authedAction("revoke-share", async (user, guestId: string, shareId: string) => {
  if (typeof shareId !== "string" || !/^[0-9a-f]{64}$/.test(shareId)) throw new GuesthouseError("invalid-input", "There is no such link.");
  const guest = await ownedGuest(user, guestId);
  const revoked = await revokeShare(db, guest.id, shareId);
  if (!revoked) throw new GuesthouseError("conflict", "This link no longer works (it expired or was revoked already).");
  await recordEvent("console-share-revoke", true, `revoked a view-only link to ${guest.name}`, user, guest.id).catch(() => {});
  revalidatePath(`/guests/${guest.id}/console`);
  return null;
});
