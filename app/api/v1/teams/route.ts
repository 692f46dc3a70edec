import { listTeams } from "@/server/web/api/admin";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `GET /api/v1/teams`: the caller's teams (admins: all). */
export const GET = apiRoute("listTeams", async ({ user }) => json({ items: await listTeams(user) }));
