/** The logged-in user of the current Next.js request. */
import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { SESSION_COOKIE, userForSession, type SessionUser } from "../auth/sessions";
import { db } from "../db/client";

export async function currentUser(): Promise<SessionUser | null> {
  const jar = await cookies();
  return userForSession(db, jar.get(SESSION_COOKIE)?.value);
}

/** For pages: the user, or a redirect to the login page. */
export async function requireUser(): Promise<SessionUser> {
  const user = await currentUser();
  if (!user) redirect("/login");
  return user;
}
