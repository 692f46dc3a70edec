import { apiRoute } from "@/server/web/api/http";
import { reserveCard } from "@/server/web/networks";

export const dynamic = "force-dynamic";

/** `PUT /api/v1/guests/<id>/nics/<index>/reservation` `{ ip, name }`: a card's fixed address and host name on its network. */
export const PUT = apiRoute("reserveAddress", async ({ user, params, body }) => {
  const index = /^\d{1,2}$/.test(params.index!) ? Number(params.index) : -1;
  await reserveCard(user, params.id!, index, body);
  return new Response(null, { status: 204 });
});
