import { apiRoute, json } from "@/server/web/api/http";
import { networkAddresses } from "@/server/web/networks";

export const dynamic = "force-dynamic";

/** `GET /api/v1/networks/<id>/addresses`: the gateway and each lease, with the guest holding it. */
export const GET = apiRoute("networkAddresses", async ({ user, params }) => json(await networkAddresses(user, params.id!)));
