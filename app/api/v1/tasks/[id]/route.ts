import { apiRoute, json } from "@/server/web/api/http";
import { taskFor } from "@/server/web/api/tasks";

export const dynamic = "force-dynamic";

/** `GET /api/v1/tasks/<id>?wait=30`: a task; with `wait`, once it ended or after that many seconds (60 at most). */
export const GET = apiRoute("getTask", async ({ user, params, query }) => json(await taskFor(user, params.id!, (query.wait ?? 0) * 1000)));
