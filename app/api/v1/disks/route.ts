import { listDisks, showDisk } from "@/server/web/api/disks";
import { apiRoute, json } from "@/server/web/api/http";
import { createDisk } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `GET /api/v1/disks`: the disks the caller may see. */
export const GET = apiRoute("listDisks", async ({ user }) => json({ items: await listDisks(user) }));

/** `POST /api/v1/disks` `{ pool, file, format, size: "20G", encrypt?, passphrase? }`: a new, empty image. */
export const POST = apiRoute("createDisk", async ({ user, body }) => {
  const { id } = await createDisk(user, body);
  return json(await showDisk(user, id), { status: 201, headers: { location: `/api/v1/disks/${id}` } });
});
