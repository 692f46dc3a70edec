"use server";

import { cookies, headers } from "next/headers";
import { redirect } from "next/navigation";
import { z } from "zod";
import { verifyPassword } from "@/server/auth/password";
import { createSession, deleteSession, overTls, sessionCookieName } from "@/server/auth/sessions";
import { loginThrottle, waitText } from "@/server/auth/throttle";
import { db } from "@/server/db/client";
import { clientAddress } from "@/server/web/client-address";
import { nameKey } from "@/server/domain/names";

const loginInput = z.object({
  username: z.string().trim().min(1).max(64),
  password: z.string().min(1).max(1024),
});

export interface LoginState {
  error: string | null;
  /** Given back so the form keeps it after a failed attempt. */
  username: string;
}

/** A hash to verify against when the user does not exist, so timing reveals nothing. */
const DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

export async function login(_prev: LoginState, form: FormData): Promise<LoginState> {
  const parsed = loginInput.safeParse({ username: form.get("username"), password: form.get("password") });
  const username = String(form.get("username") ?? "").slice(0, 64);
  if (!parsed.success) return { error: "Enter a user name and a password.", username };
  const name = parsed.data.username;
  const wait = loginThrottle.attempt(name);
  if (wait > 0) {
    return { error: `Too many failed logins for this user name. Try again in ${waitText(wait)}.`, username };
  }
  // The name as typed, or any spelling of it (case, width): one person either way.
  const user = await db.user.findFirst({ where: { OR: [{ usernameKey: nameKey(name) }, { username: name }] } });
  const ok = await verifyPassword(parsed.data.password, user?.passwordHash ?? DUMMY_HASH);
  if (!user || !ok) {
    // Counted as a failure when it began (loginThrottle.attempt).
    return { error: "That user name and password do not match.", username };
  }
  loginThrottle.succeeded(name);

  const head = await headers();
  const session = await createSession(db, user.id, { userAgent: head.get("user-agent"), address: clientAddress(head) });
  const secure = overTls(Object.fromEntries(head.entries()));
  (await cookies()).set(sessionCookieName(secure), session.secret, {
    httpOnly: true,
    sameSite: "lax",
    secure,
    path: "/",
    expires: session.expiresAt,
  });
  redirect(user.mustChangePassword ? "/account" : "/");
}

export async function logout(): Promise<void> {
  const jar = await cookies();
  const name = sessionCookieName(overTls(Object.fromEntries((await headers()).entries())));
  const secret = jar.get(name)?.value;
  if (secret) await deleteSession(db, secret);
  jar.delete(name);
  redirect("/login");
}
