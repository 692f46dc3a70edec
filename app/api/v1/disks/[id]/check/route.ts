import { apiRoute, json } from "@/server/web/api/http";
import { checkDisk } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `POST /api/v1/disks/<id>/check`: qemu-img check's verdict and report. */
export const POST = apiRoute("checkDisk", async ({ user, params }) => json(await checkDisk(user, params.id!)));
