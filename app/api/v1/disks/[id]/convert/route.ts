import { apiRoute, json } from "@/server/web/api/http";
import { taskFor } from "@/server/web/api/tasks";
import { convertDisk } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `POST /api/v1/disks/<id>/convert` `{ file, format }`: 202 with the task; the new disk is pending until it ends. */
export const POST = apiRoute("convertDisk", async ({ user, params, body }) => {
  const { taskId } = await convertDisk(user, params.id!, body);
  return json(await taskFor(user, taskId, 0), { status: 202, headers: { location: `/api/v1/tasks/${taskId}` } });
});
