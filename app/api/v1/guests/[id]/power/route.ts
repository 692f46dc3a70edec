import { powerAction } from "@/server/web/api/guests";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `POST /api/v1/guests/<id>/power` `{ "action": "start" }`: as the guest page's buttons. */
export const POST = apiRoute("powerGuest", async ({ user, params, body }) => json(await powerAction(user, params.id!, body.action, body.bootMenu)));
