import { shownGuest } from "@/server/web/api/guest-answers";
import { apiRoute } from "@/server/web/api/http";
import { editHardware } from "@/server/web/guest-ops";

export const dynamic = "force-dynamic";

/** `PUT /api/v1/guests/<id>/hardware` with If-Match: the guest's whole hardware; 412 when it changed since it was read. */
export const PUT = apiRoute("updateHardware", async ({ user, params, body, ifMatch }) => {
  await editHardware(user, params.id!, body, ifMatch);
  return shownGuest(user, params.id!);
});
