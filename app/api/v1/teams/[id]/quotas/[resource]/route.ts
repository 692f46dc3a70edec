import { apiRoute, json } from "@/server/web/api/http";
import { setLimit } from "@/server/web/quota-admin";

export const dynamic = "force-dynamic";

/** `PUT /api/v1/teams/<id>/quotas/<resource>` `{ "limit": "500G" | null, "userId"?: "…" }`: sets or clears a limit (admins). */
export const PUT = apiRoute("setQuota", async ({ user, params, body }) => json({ limit: await setLimit(user, params.id!, body.userId ?? "", params.resource, body.limit ?? "") }));
