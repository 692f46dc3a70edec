import { apiRoute, json } from "@/server/web/api/http";
import { topConsumers } from "@/server/web/metrics/views";

export const dynamic = "force-dynamic";

/** `GET /api/v1/metrics/top?sort=cpu&window=now|hour|day`: every guest the caller may see, highest first. */
export const GET = apiRoute("topConsumers", async ({ user, query }) => {
  const sort = query.sort ?? "cpu";
  const window = query.window ?? "now";
  return json({ sort, window, items: await topConsumers(user, sort, window) });
});
