import { liveViewers } from "@/server/console/sessions";
import { db } from "@/server/db/client";
import { guestRoute } from "@/server/web/guest-route";

export const dynamic = "force-dynamic";

/** Who is connected to the guest's consoles right now (the console page polls this). */
export const GET = guestRoute(
  "view",
  async ({ guest }) => Response.json({ viewers: await liveViewers(db, guest.id) }, { headers: { "cache-control": "no-store" } }),
  { json: true },
);
