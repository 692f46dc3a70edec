import { apiRoute, json } from "@/server/web/api/http";
import { listTasks } from "@/server/web/api/tasks";

export const dynamic = "force-dynamic";

/** `GET /api/v1/tasks?state=running&limit=100`: the caller's tasks (admins: everyone's), newest first. */
export const GET = apiRoute("listTasks", async ({ user, query }) => json({ items: await listTasks(user, query.state, query.limit ?? 100) }));
