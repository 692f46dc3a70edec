import { apiRoute, json } from "@/server/web/api/http";
import { testNetworkForward } from "@/server/web/networks";

export const dynamic = "force-dynamic";

/** `POST /api/v1/networks/<id>/forwards/test` `{ protocol, hostPort }`: a connection from the host to the forward. */
export const POST = apiRoute("testForward", async ({ user, params, body }) => json(await testNetworkForward(user, params.id!, body.protocol, body.hostPort)));
