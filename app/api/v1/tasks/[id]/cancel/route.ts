import { apiRoute, json } from "@/server/web/api/http";
import { taskFor } from "@/server/web/api/tasks";
import { cancelTask } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `POST /api/v1/tasks/<id>/cancel`: stops a running task (as the tasks page's button); answers the task. */
export const POST = apiRoute("cancelTask", async ({ user, params }) => {
  await cancelTask(user, params.id!);
  return json(await taskFor(user, params.id!, 0));
});
