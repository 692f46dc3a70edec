import { createToken, listTokens } from "@/server/auth/api-tokens";
import { db } from "@/server/db/client";
import { apiRoute, json } from "@/server/web/api/http";
import { tokenJson } from "@/server/web/api/tokens";
import { recordEvent } from "@/server/web/audit";

export const dynamic = "force-dynamic";

/** `GET /api/v1/tokens`: the caller's tokens (never the tokens themselves). */
export const GET = apiRoute("listTokens", async ({ user }) => json({ items: (await listTokens(db, user)).map(tokenJson) }));

/** `POST /api/v1/tokens`: a new token, shown in this answer only. */
export const POST = apiRoute("createToken", async ({ user, body }) => {
  const made = await createToken(db, user, body);
  await recordEvent("token-create", true, `made the API token "${made.view.name}" (${made.view.scope})`, user, null, { params: { name: made.view.name, scope: made.view.scope } }).catch(() => {});
  return json({ ...tokenJson(made.view), token: made.token }, { status: 201 });
});
