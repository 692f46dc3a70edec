import { apiRoute, json } from "@/server/web/api/http";
import { deleteNetwork, loadNetwork, networkEtag } from "@/server/web/networks";

export const dynamic = "force-dynamic";

/** `GET /api/v1/networks/<id>`: one network, with an ETag (the version a rules change names in If-Match). */
export const GET = apiRoute("getNetwork", async ({ user, params }) => {
  const network = await loadNetwork(user, params.id!);
  return json(network, { headers: { etag: networkEtag(network) } });
});

/** `DELETE /api/v1/networks/<id>`: a managed network no card is on. */
export const DELETE = apiRoute("deleteNetwork", async ({ user, params }) => {
  await deleteNetwork(user, params.id!);
  return new Response(null, { status: 204 });
});
