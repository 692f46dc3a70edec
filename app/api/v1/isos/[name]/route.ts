import { apiRoute } from "@/server/web/api/http";
import { deleteIso } from "@/server/web/disk-ops";

export const dynamic = "force-dynamic";

/** `DELETE /api/v1/isos/<name>`: an uploaded ISO no guest uses. */
export const DELETE = apiRoute("deleteIso", async ({ user, params }) => {
  await deleteIso(user, params.name!);
  return new Response(null, { status: 204 });
});
