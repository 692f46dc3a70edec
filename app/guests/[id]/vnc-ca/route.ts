import { toGuesthouseError } from "@/server/domain/errors";
import { agentFor, loadGuest } from "@/server/web/guests";
import { currentUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/**
 * The certificate authority of the guest's host's TLS VNC endpoint, for a native
 * viewer to trust (a PEM file; public, but served only to people who may see the
 * guest, like the rest of its page). 404 when the host has TLS VNC off.
 */
export async function GET(_request: Request, { params }: { params: Promise<{ id: string }> }): Promise<Response> {
  const user = await currentUser();
  if (!user) return new Response("Log in first.", { status: 401 });
  try {
    const guest = await loadGuest(user, (await params).id);
    const pem = await agentFor(guest.host).vncCaCertificate();
    return new Response(pem, {
      headers: {
        "content-type": "application/x-pem-file",
        // The name the page's viewer hints use (components/native-viewer.tsx).
        "content-disposition": 'attachment; filename="guesthouse-vnc-ca.pem"',
        "cache-control": "no-store",
      },
    });
  } catch (err) {
    const error = toGuesthouseError(err);
    return new Response(error.message, { status: error.httpStatus });
  }
}
