import { apiRoute, json } from "@/server/web/api/http";
import { hostHistory } from "@/server/web/metrics/views";

export const dynamic = "force-dynamic";

/** `GET /api/v1/hosts/<id>/metrics?range=hour|day|week|month|year`: the host's history, in columns (admins). */
export const GET = apiRoute("hostMetrics", async ({ user, params, query }) => json(await hostHistory(user, params.id!, query.range ?? "hour")));
