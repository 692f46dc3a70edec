import { apiRoute, json } from "@/server/web/api/http";
import { guestHistory } from "@/server/web/metrics/views";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests/<id>/metrics?range=hour|day|week|month|year`: the guest's history, in columns. */
export const GET = apiRoute("guestMetrics", async ({ user, params, query }) => json(await guestHistory(user, params.id!, query.range ?? "hour")));
