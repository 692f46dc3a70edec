import { SCREENSHOT_MAX_WIDTH, THUMBNAIL_WIDTH } from "@/server/domain/types";
import { agentFor } from "@/server/web/guests";
import { guestRoute } from "@/server/web/guest-route";

export const dynamic = "force-dynamic";

/**
 * A small PNG of the guest's screen (QMP screendump, scaled and cached for ~2 s by
 * the host's agent), for the guest list. `?w=` asks for another width, up to the
 * agent's limit. A guest that is not running answers 409; the list shows a placeholder.
 */
export const GET = guestRoute("watch", async ({ request, guest }) => {
  const asked = Number(new URL(request.url).searchParams.get("w"));
  const width = Number.isInteger(asked) && asked >= 16 ? Math.min(asked, SCREENSHOT_MAX_WIDTH) : THUMBNAIL_WIDTH;
  const png = await agentFor(guest.host).screenshot(guest.id, width);
  return new Response(new Uint8Array(png), {
    headers: { "content-type": "image/png", "cache-control": "private, max-age=2", "content-length": String(png.length) },
  });
});
