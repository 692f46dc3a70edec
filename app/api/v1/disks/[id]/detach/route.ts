import { showDisk } from "@/server/web/api/disks";
import { apiRoute, json } from "@/server/web/api/http";
import { detachDisk } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `POST /api/v1/disks/<id>/detach`: from its guest (unplugged when it runs); answers the disk. */
export const POST = apiRoute("detachDisk", async ({ user, params }) => {
  await detachDisk(user, params.id!);
  return json(await showDisk(user, params.id!));
});
