import { apiRoute, json } from "@/server/web/api/http";
import { loadNetwork, networkEtag, updateNetworkRules, versionOfEtag } from "@/server/web/networks";

export const dynamic = "force-dynamic";

/** `PUT /api/v1/networks/<id>/rules` `{ forwards, firewall }`: replaced as one; If-Match guards against a change meanwhile. */
export const PUT = apiRoute("updateNetworkRules", async ({ user, params, body, ifMatch }) => {
  await updateNetworkRules(user, params.id!, body, ifMatch === undefined ? undefined : versionOfEtag(ifMatch));
  const network = await loadNetwork(user, params.id!);
  return json(network, { headers: { etag: networkEtag(network) } });
});
