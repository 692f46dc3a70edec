import { powerAction } from "@/server/web/api/guests";
import { apiRoute, json } from "@/server/web/api/http";
import { powerRequest } from "@/server/web/api/schemas";

export const dynamic = "force-dynamic";

/** `POST /api/v1/guests/<id>/power` `{ "action": "start" }`: as the guest page's buttons. */
export const POST = apiRoute(async ({ user, params, body }) => json(await powerAction(user, params.id!, body.action, body.bootMenu)), { body: powerRequest });
