import { apiRoute, json } from "@/server/web/api/http";
import { guestLive } from "@/server/web/metrics/views";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests/<id>/metrics/live?after=<ms>`: a running guest's samples since then (asking keeps the host sampling it every second). */
export const GET = apiRoute("guestMetricsLive", async ({ user, params, query }) => json({ items: await guestLive(user, params.id!, query.after ?? 0) }));
