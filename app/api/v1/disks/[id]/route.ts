import { showDisk } from "@/server/web/api/disks";
import { apiRoute, json } from "@/server/web/api/http";
import { deleteDisk } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `GET /api/v1/disks/<id>`: one disk. */
export const GET = apiRoute("getDisk", async ({ user, params }) => json(await showDisk(user, params.id!)));

/** `DELETE /api/v1/disks/<id>`: a detached disk and its file. */
export const DELETE = apiRoute("deleteDisk", async ({ user, params }) => {
  await deleteDisk(user, params.id!);
  return new Response(null, { status: 204 });
});
