import { revokeToken } from "@/server/auth/api-tokens";
import { db } from "@/server/db/client";
import { apiRoute } from "@/server/web/api/http";
import { recordEvent } from "@/server/web/audit";

export const dynamic = "force-dynamic";

/** `DELETE /api/v1/tokens/<id>`: revokes one of the caller's tokens at once. */
export const DELETE = apiRoute("revokeToken", async ({ user, params }) => {
  await revokeToken(db, user, params.id);
  await recordEvent("token-revoke", true, "revoked an API token", user, null).catch(() => {});
  return new Response(null, { status: 204 });
});
