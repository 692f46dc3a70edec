import { apiRoute, json } from "@/server/web/api/http";
import { powerGuest } from "@/server/web/power";

export const dynamic = "force-dynamic";

/** `POST /api/v1/guests/<id>/power` `{ "action": "start" }`: as the guest page's buttons. */
export const POST = apiRoute("powerGuest", async ({ user, params, body }) => json({ state: await powerGuest(user, params.id!, body.action, body.bootMenu === undefined ? undefined : { bootMenu: body.bootMenu }) }));
