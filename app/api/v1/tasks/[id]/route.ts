import { GuesthouseError } from "@/server/domain/errors";
import { apiRoute, json } from "@/server/web/api/http";
import { taskFor } from "@/server/web/api/tasks";

export const dynamic = "force-dynamic";

/** `GET /api/v1/tasks/<id>?wait=30`: a task; with `wait`, once it ended or after that many seconds (60 at most). */
export const GET = apiRoute(async ({ request, user, params }) => {
  const raw = new URL(request.url).searchParams.get("wait");
  if (raw !== null && (!/^\d{1,2}$/.test(raw) || Number(raw) > 60)) throw new GuesthouseError("invalid-input", "wait is a number of seconds from 0 to 60.");
  return json(await taskFor(user, params.id!, Number(raw ?? 0) * 1000));
});
