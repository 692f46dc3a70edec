import { listRoles } from "@/server/web/api/admin";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `GET /api/v1/roles`: the roles a member may hold in a team. */
export const GET = apiRoute("listRoles", async () => json(listRoles()));
