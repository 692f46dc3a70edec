/**
 * Route handlers under /guests/<id>/… (downloads, pictures, small JSON reads): each
 * needs the logged-in user and a guest that user may do its `action` to, and turns a refusal into
 * its HTTP status with the message for a person, never cached. Pages poll some of them
 * (thumbnails every few seconds per row), so the guest is read narrowly: its id, name
 * and host; a handler that needs the whole guest loads it.
 */
import type { Action } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { toGuesthouseError } from "../domain/errors";
import { loadGuestBrief } from "./guests";
import { currentUser } from "./session";

type Params = { params: Promise<{ id: string }> };

export function guestRoute(
  /** What the handler does to the guest, as the policy names it (server/auth/policy.ts). */
  action: Action,
  handle: (ctx: { request: Request; user: SessionUser; guest: Awaited<ReturnType<typeof loadGuestBrief>> }) => Promise<Response>,
  { json = false }: { json?: boolean } = {},
): (request: Request, params: Params) => Promise<Response> {
  const refuse = (status: number, message: string) => {
    const init = { status, headers: { "cache-control": "no-store" } };
    return json ? Response.json({ message }, init) : new Response(message, init);
  };
  return async (request, { params }) => {
    const user = await currentUser();
    if (!user) return refuse(401, "Log in first.");
    try {
      const guest = await loadGuestBrief(user, (await params).id, action);
      return await handle({ request, user, guest });
    } catch (err) {
      const error = toGuesthouseError(err);
      return refuse(error.httpStatus, error.message);
    }
  };
}
