"use server";

import { revalidatePath } from "next/cache";
import { createToken, revokeToken } from "@/server/auth/api-tokens";
import { db } from "@/server/db/client";
import { authedAction } from "@/server/web/action";
import { recordEvent } from "@/server/web/audit";

/** A new personal API token, shown this once (the account page). */
export const makeApiToken = authedAction("token-create", async (user, input: { name: unknown; scope: unknown; days: unknown; teamId: unknown }) => {
  const made = await createToken(db, user, { name: input?.name, scope: input?.scope, days: Number(input?.days), teamId: input?.teamId || null });
  await recordEvent("token-create", true, `made the API token "${made.view.name}" (${made.view.scope})`, user, null, { params: { name: made.view.name, scope: made.view.scope } }).catch(() => {});
  revalidatePath("/account");
  return { token: made.token };
});

/** Revokes one of the user's API tokens at once. */
export const revokeApiToken = authedAction("token-revoke", async (user, id: string) => {
  await revokeToken(db, user, id);
  await recordEvent("token-revoke", true, "revoked an API token", user, null).catch(() => {});
  revalidatePath("/account");
  return null;
});
