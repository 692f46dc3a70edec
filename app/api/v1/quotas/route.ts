import { quotas } from "@/server/web/api/admin";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `GET /api/v1/quotas`: usage against limits of the teams the caller may see it of. */
export const GET = apiRoute("getQuotas", async ({ user }) => json(await quotas(user)));
