import { apiRoute } from "@/server/web/api/http";
import { revokeShareLink } from "@/server/web/consoles";

export const dynamic = "force-dynamic";

/** `DELETE /api/v1/guests/<id>/shares/<shareId>`: ends the link at once. */
export const DELETE = apiRoute("revokeShare", async ({ user, params }) => {
  await revokeShareLink(user, params.id!, params.shareId!);
  return new Response(null, { status: 204 });
});
