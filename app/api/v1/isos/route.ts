import { listIsos } from "@/server/web/api/disks";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `GET /api/v1/isos`: the ISOs the caller's team may use (admins: every one). Upload with `PUT /api/v1/uploads/isos/<name>`. */
export const GET = apiRoute("listIsos", async ({ user }) => json({ items: await listIsos(user) }));
