import { showDisk } from "@/server/web/api/disks";
import { apiRoute, json } from "@/server/web/api/http";
import { snapshotDisk } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `POST /api/v1/disks/<id>/snapshots`: as the disk page's form; answers the disk as it is after it. */
export const POST = apiRoute("snapshotDisk", async ({ user, params, body }) => {
  await snapshotDisk(user, params.id!, body);
  return json(await showDisk(user, params.id!));
});
