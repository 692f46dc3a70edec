import { showDisk } from "@/server/web/api/disks";
import { apiRoute, json } from "@/server/web/api/http";
import { resizeDisk } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `POST /api/v1/disks/<id>/resize`: as the disk page's form; answers the disk as it is after it. */
export const POST = apiRoute("resizeDisk", async ({ user, params, body }) => {
  await resizeDisk(user, params.id!, body);
  return json(await showDisk(user, params.id!));
});
