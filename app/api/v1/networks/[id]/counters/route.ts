import { apiRoute, json } from "@/server/web/api/http";
import { networkCounters } from "@/server/web/networks";

export const dynamic = "force-dynamic";

/** `GET /api/v1/networks/<id>/counters`: what each rule, the defaults and the spoofing checks matched. */
export const GET = apiRoute("networkCounters", async ({ user, params }) => json(await networkCounters(user, params.id!)));
