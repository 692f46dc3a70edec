/** The logged-in user of the current Next.js request. */
import { cookies, headers } from "next/headers";
import { cache } from "react";
import { redirect } from "next/navigation";
import { overTls, sessionCookieName, userForSession, type SessionUser } from "../auth/sessions";
import { db } from "../db/client";

/** The current request's session secret, under the one cookie name its transport allows. */
export async function currentSessionSecret(): Promise<string | undefined> {
  const jar = await cookies();
  const secure = overTls(Object.fromEntries((await headers()).entries()));
  return jar.get(sessionCookieName(secure))?.value;
}

/** Once per request: the layout and the page both ask. */
export const currentUser = cache(async (): Promise<SessionUser | null> => userForSession(db, await currentSessionSecret()));

/**
 * For pages: the user, or a redirect to the login page; an account with a one-time
 * password, or without the second factor its team requires, goes to its account page to
 * set that up first (`allowOneTimePassword` is that page).
 */
export async function requireUser({ allowOneTimePassword = false } = {}): Promise<SessionUser> {
  const user = await currentUser();
  if (!user) redirect("/login");
  if ((user.mustChangePassword || user.mustEnrollTotp) && !allowOneTimePassword) redirect("/account");
  return user;
}
