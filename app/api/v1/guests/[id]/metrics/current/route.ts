import { GuesthouseError } from "@/server/domain/errors";
import { apiRoute, json } from "@/server/web/api/http";
import { guestNow } from "@/server/web/metrics/views";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests/<id>/metrics/current`: a running guest's counters now (per vCPU, disk, NIC). */
export const GET = apiRoute("guestMetricsCurrent", async ({ user, params }) => {
  const current = await guestNow(user, params.id!);
  if (!current) throw new GuesthouseError("conflict", "This guest is not running (or started moments ago and is not sampled yet): it has no counters now. Its history is at …/metrics?range=.");
  return json(current);
});
