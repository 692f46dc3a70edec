import { apiRoute, json } from "@/server/web/api/http";
import { createNetwork, listNetworks, loadNetwork, networkEtag } from "@/server/web/networks";

export const dynamic = "force-dynamic";

/** `GET /api/v1/networks`: the networks of the caller's teams. */
export const GET = apiRoute("listNetworks", async ({ user }) => json({ items: await listNetworks(user) }));

/** `POST /api/v1/networks` `{ name, kind, subnet, dhcp, domain, description? }`: a managed network of the caller's team. */
export const POST = apiRoute("createNetwork", async ({ user, body }) => {
  const { id } = await createNetwork(user, body);
  const network = await loadNetwork(user, id);
  return json(network, { status: 201, headers: { location: `/api/v1/networks/${id}`, etag: networkEtag(network) } });
});
