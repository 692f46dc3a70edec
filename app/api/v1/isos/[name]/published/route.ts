import { apiRoute } from "@/server/web/api/http";
import { setIsoPublished } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `PUT /api/v1/isos/<name>/published` `{ "published": true }`: offers it to every team, or takes it back (admins). */
export const PUT = apiRoute("publishIso", async ({ user, params, body }) => {
  await setIsoPublished(user, params.name!, body.published);
  return new Response(null, { status: 204 });
});
