import { shownGuest } from "@/server/web/api/guest-answers";
import { apiRoute } from "@/server/web/api/http";
import { makeTemplate } from "@/server/web/guest-ops";

export const dynamic = "force-dynamic";

/** `POST /api/v1/guests/<id>/template`: a stopped guest becomes a template. */
export const POST = apiRoute("makeTemplate", async ({ user, params, ifMatch }) => {
  await makeTemplate(user, params.id!, ifMatch);
  return shownGuest(user, params.id!);
});
