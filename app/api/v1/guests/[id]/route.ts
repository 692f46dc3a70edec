import { showGuest } from "@/server/web/api/guests";
import { apiRoute, json } from "@/server/web/api/http";
import { deleteGuest } from "@/server/web/guest-ops";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests/<id>`: one guest, with an ETag (304 for a matching If-None-Match). */
export const GET = apiRoute("getGuest", async ({ request, user, params }) => {
  const { guest, etag } = await showGuest(user, params.id!);
  if (request.headers.get("if-none-match") === etag) return new Response(null, { status: 304, headers: { etag } });
  return json(guest, { headers: { etag } });
});

/** `DELETE /api/v1/guests/<id>?disks=delete|keep`: a stopped guest; If-Match guards against a change meanwhile. */
export const DELETE = apiRoute("deleteGuest", async ({ user, params, query, ifMatch }) => json(await deleteGuest(user, params.id!, query.disks === "delete", ifMatch)));
