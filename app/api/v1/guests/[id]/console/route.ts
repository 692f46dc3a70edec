import { apiRoute, json, publicUrl } from "@/server/web/api/http";
import { openConsole } from "@/server/web/consoles";

export const dynamic = "force-dynamic";

/**
 * `POST /api/v1/guests/<id>/console` `{ "kind": "vnc" | "serial", "viewOnly": false }`: a
 * single-use ticket and the websocket URL to open with it at once (a VNC client over
 * websockets, or the serial port's raw bytes), or why there is none yet.
 */
export const POST = apiRoute("openConsole", async ({ request, user, params, body }) => {
  const opening = await openConsole(user, params.id!, body);
  if (opening.status !== "ticket") return json({ status: opening.status, message: opening.message });
  const url = publicUrl(request, `${opening.path}?ticket=${encodeURIComponent(opening.ticket)}`, true);
  return json({ status: "ticket", url, ticket: opening.ticket, viewOnly: opening.viewOnly });
});
