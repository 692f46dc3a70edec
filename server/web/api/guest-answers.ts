/** How guest operations answer: the guest as it is after them, with its ETag (and, when new, its Location). */
import type { SessionUser } from "../../auth/sessions";
import { showGuest } from "./guests";
import { json } from "./http";

export async function shownGuest(user: SessionUser, id: string, status = 200): Promise<Response> {
  const { guest, etag } = await showGuest(user, id);
  return json(guest, { status, headers: { etag, ...(status === 201 ? { location: `/api/v1/guests/${guest.id}` } : {}) } });
}

export const createdGuest = (user: SessionUser, made: { id: string }): Promise<Response> => shownGuest(user, made.id, 201);
