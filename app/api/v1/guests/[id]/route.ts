import { showGuest } from "@/server/web/api/guests";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests/<id>`: one guest, with an ETag (304 for a matching If-None-Match). */
export const GET = apiRoute(async ({ request, user, params }) => {
  const { guest, etag } = await showGuest(user, params.id!);
  if (request.headers.get("if-none-match") === etag) return new Response(null, { status: 304, headers: { etag } });
  return json(guest, { headers: { etag } });
});
