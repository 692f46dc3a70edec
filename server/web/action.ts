/**
 * Every server action is built with authedAction(): it loads the session first and
 * refuses without one, then turns any GuesthouseError into a result the page shows.
 * Details for operators go to the server log, never to the page.
 */
import { QuotaError, toGuesthouseError, type ErrorCode } from "../domain/errors";
import type { QuotaRefusal } from "../domain/types";
import type { SessionUser } from "../auth/sessions";
import { currentUser } from "./session";

/** The actions an account with a one-time password may run: changing it, and its sessions. */
const ALLOWED_BEFORE_NEW_PASSWORD = new Set(["change-password", "end-session"]);
/** The actions a member whose team requires a second factor may run before setting it up. */
const ALLOWED_BEFORE_SECOND_FACTOR = new Set(["totp-start", "totp-confirm", "end-session", "change-password"]);

/** A refusal by a quota carries its facts (`quota`), so the page can offer to ask for more. */
export type ActionResult<T = null> = { ok: true; data: T } | { ok: false; code: ErrorCode; error: string; quota?: QuotaRefusal };

export function authedAction<A extends unknown[], R>(
  name: string,
  fn: (user: SessionUser, ...args: A) => Promise<R>,
): (...args: A) => Promise<ActionResult<R>> {
  return async (...args: A) => {
    const user = await currentUser();
    if (!user) return { ok: false, code: "unauthenticated", error: "Your session has ended. Log in again." };
    // An account made with a one-time password does nothing else until it is changed.
    if (user.mustChangePassword && !ALLOWED_BEFORE_NEW_PASSWORD.has(name)) {
      return { ok: false, code: "forbidden", error: "Choose your own password first (your account page)." };
    }
    if (user.mustEnrollTotp && !ALLOWED_BEFORE_SECOND_FACTOR.has(name)) {
      return { ok: false, code: "forbidden", error: "A team of yours requires a second factor: set it up on your account page first." };
    }
    try {
      return { ok: true, data: await fn(user, ...args) };
    } catch (err) {
      // redirect() and notFound() work by throwing; let Next handle them.
      if (err instanceof Error && "digest" in err && String((err as { digest: unknown }).digest).startsWith("NEXT_")) throw err;
      const error = toGuesthouseError(err);
      console.error(`action ${name} by ${user.username} failed: ${error.code}: ${error.message}${error.detail ? `\n${error.detail}` : ""}`);
      return { ok: false, code: error.code, error: error.message, ...(error instanceof QuotaError ? { quota: error.refusal } : {}) };
    }
  };
}
