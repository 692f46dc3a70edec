"use server";

import { authedAction } from "@/server/web/action";
import { makeTemplate as make } from "@/server/web/guest-ops";

/** Turns a stopped guest into a template (server/web/guest-ops.ts). */
export const makeTemplate = authedAction("make-template", async (user, guestId: string) => {
  await make(user, guestId);
  return null;
});
