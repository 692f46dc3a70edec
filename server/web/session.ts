/** The logged-in user of the current Next.js request. */
import { cookies } from "next/headers";
import { cache } from "react";
import { redirect } from "next/navigation";
import { SESSION_COOKIE, userForSession, type SessionUser } from "../auth/sessions";
import { db } from "../db/client";

/** Once per request: the layout and the page both ask. */
export const currentUser = cache(async (): Promise<SessionUser | null> => {
  const jar = await cookies();
  return userForSession(db, jar.get(SESSION_COOKIE)?.value);
});

/** For pages: the user, or a redirect to the login page. */
export async function requireUser(): Promise<SessionUser> {
  const user = await currentUser();
  if (!user) redirect("/login");
  return user;
}
