import { agentFor } from "@/server/web/guests";
import { guestRoute } from "@/server/web/guest-route";

export const dynamic = "force-dynamic";

/**
 * The certificate authority of the guest's host's TLS VNC endpoint, for a native
 * viewer to trust (a PEM file; public, but served only to people who may see the
 * guest, like the rest of its page). 404 when the host has TLS VNC off.
 */
export const GET = guestRoute("operate", async ({ guest }) =>
  new Response(await agentFor(guest.host).vncCaCertificate(), {
    headers: {
      "content-type": "application/x-pem-file",
      // The name the page's viewer hints use (components/native-viewer.tsx).
      "content-disposition": 'attachment; filename="guesthouse-vnc-ca.pem"',
      "cache-control": "no-store",
    },
  }),
);
