import { apiRoute, json } from "@/server/web/api/http";
import { hostAlerts } from "@/server/web/metrics/thresholds";
import { hostNow } from "@/server/web/metrics/views";

export const dynamic = "force-dynamic";

/** `GET /api/v1/hosts/<id>/metrics/current`: the host's figures now and the thresholds it crosses (admins). */
export const GET = apiRoute("hostMetricsCurrent", async ({ user, params }) => {
  const now = await hostNow(user, params.id!);
  return json({ ...now, alerts: await hostAlerts(user, params.id!) });
});
