import { toGuesthouseError } from "@/server/domain/errors";
import { SCREENSHOT_MAX_WIDTH, THUMBNAIL_WIDTH } from "@/server/domain/types";
import { agentFor, loadGuest } from "@/server/web/guests";
import { currentUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/**
 * A small PNG of the guest's screen (QMP screendump, scaled and cached for ~2 s by
 * the host's agent), for the guest list. `?w=` asks for another width, up to the
 * agent's limit. A guest that is not running answers 409; the list shows a placeholder.
 */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }): Promise<Response> {
  const user = await currentUser();
  if (!user) return new Response("Log in first.", { status: 401 });
  const asked = Number(new URL(request.url).searchParams.get("w"));
  const width = Number.isInteger(asked) && asked >= 16 ? Math.min(asked, SCREENSHOT_MAX_WIDTH) : THUMBNAIL_WIDTH;
  try {
    const guest = await loadGuest(user, (await params).id);
    const png = await agentFor(guest.host).screenshot(guest.id, width);
    return new Response(new Uint8Array(png), {
      headers: { "content-type": "image/png", "cache-control": "private, max-age=2", "content-length": String(png.length) },
    });
  } catch (err) {
    const error = toGuesthouseError(err);
    return new Response(error.message, { status: error.httpStatus, headers: { "cache-control": "no-store" } });
  }
}
