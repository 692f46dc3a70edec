import { agentFor } from "@/server/web/guests";
import { recordEvent } from "@/server/web/audit";
import { guestRoute } from "@/server/web/guest-route";

export const dynamic = "force-dynamic";

/**
 * Everything the guest's serial port printed lately (the agent keeps a bounded,
 * rotated log), as a text download. Works whether or not the guest runs, and
 * whether or not anyone had the console open. `?view=1` shows it in the browser.
 */
export const GET = guestRoute("operate", async ({ request, user, guest }) => {
  const log = await agentFor(guest.host).serialLog(guest.id);
  const inline = new URL(request.url).searchParams.get("view") === "1";
  await recordEvent("serial-log", true, `read the serial log of ${guest.name}`, user, guest.id).catch(() => {});
  return new Response(log, {
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "content-disposition": `${inline ? "inline" : "attachment"}; filename="${guest.name}-serial.log"`,
      "cache-control": "no-store",
    },
  });
});
