"use server";

import { authedAction } from "@/server/web/action";
import { createShareLink as create, revokeShareLink as revoke } from "@/server/web/consoles";

/** A view-only link to the guest's screen, shown this once (server/web/consoles.ts). */
export const createShareLink = authedAction("share-console", create);

/** Ends a view-only link at once. */
export const revokeShareLink = authedAction("revoke-share", async (user, guestId: string, shareId: string) => {
  await revoke(user, guestId, shareId);
  return null;
});
