import { listUsers } from "@/server/web/api/admin";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `GET /api/v1/users`: every account (admins). */
export const GET = apiRoute("listUsers", async ({ user }) => json({ items: await listUsers(user) }));
