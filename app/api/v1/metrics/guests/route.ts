import { apiRoute, json } from "@/server/web/api/http";
import { guestFigures } from "@/server/web/metrics/figures";

export const dynamic = "force-dynamic";

/** `GET /api/v1/metrics/guests?ids=a,b`: CPU and memory now of the running guests the caller may see (of those named), for the guest list. */
export const GET = apiRoute("guestFigures", async ({ user, query }) => json(await guestFigures(user, query.ids)));
