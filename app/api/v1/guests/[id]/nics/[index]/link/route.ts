import { apiRoute } from "@/server/web/api/http";
import { setCardLink } from "@/server/web/networks";

export const dynamic = "force-dynamic";

/** `POST /api/v1/guests/<id>/nics/<index>/link` `{ up }`: a running guest's card's link up or down. */
export const POST = apiRoute("setLink", async ({ user, params, body }) => {
  const index = /^\d{1,2}$/.test(params.index!) ? Number(params.index) : -1;
  await setCardLink(user, params.id!, index, body.up);
  return new Response(null, { status: 204 });
});
