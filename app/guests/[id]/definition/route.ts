import { definitionOf, loadGuest } from "@/server/web/guests";
import { guestRoute } from "@/server/web/guest-route";

export const dynamic = "force-dynamic";

/** Export: the guest's definition as a JSON download, importable on any Guesthouse. */
export const GET = guestRoute("view", async ({ user, guest }) =>
  new Response(`${JSON.stringify(definitionOf(await loadGuest(user, guest.id, "view")), null, 2)}\n`, {
    headers: {
      "content-type": "application/json",
      "content-disposition": `attachment; filename="${guest.name}.guesthouse.json"`,
      "cache-control": "no-store",
    },
  }),
);
