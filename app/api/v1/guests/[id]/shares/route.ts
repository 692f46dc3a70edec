import { apiRoute, json, publicUrl } from "@/server/web/api/http";
import { createShareLink, sharesOf } from "@/server/web/consoles";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests/<id>/shares`: the guest's view-only links (never the links themselves). */
export const GET = apiRoute("listShares", async ({ user, params }) => json({ items: await sharesOf(user, params.id!) }));

/** `POST /api/v1/guests/<id>/shares` `{ "duration": "1h" | "8h" | "24h", "label": "" }`: a view-only link, shown this once. */
export const POST = apiRoute("createShare", async ({ request, user, params, body }) => {
  const made = await createShareLink(user, params.id!, body.duration, body.label);
  return json({ url: publicUrl(request, made.path), expiresAt: made.expiresAt }, { status: 201 });
});
