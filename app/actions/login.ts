"use server";

import { cookies, headers } from "next/headers";
import { redirect } from "next/navigation";
import { z } from "zod";
import { verifyPassword } from "@/server/auth/password";
import { createSession, deleteSession, overTls, sessionCookieName } from "@/server/auth/sessions";
import { loginGateOfProcess, waitText } from "@/server/auth/throttle";
import { GuesthouseError } from "@/server/domain/errors";
import { db } from "@/server/db/client";
import { clientAddress } from "@/server/web/client-address";
import { takeSecondFactor } from "@/server/web/second-factor";
import { nameKey, userNamed } from "@/server/domain/names";

const loginInput = z.object({
  username: z.string().trim().min(1).max(64),
  password: z.string().min(1).max(1024),
});

export interface LoginState {
  error: string | null;
  /** Given back so the form keeps it after a failed attempt. */
  username: string;
  /** The password was right and the account has a second factor: the form asks for a code. */
  needCode?: boolean;
}

/** A hash to verify against when the user does not exist, so timing reveals nothing. */
const DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

export async function login(_prev: LoginState, form: FormData): Promise<LoginState> {
  const parsed = loginInput.safeParse({ username: form.get("username"), password: form.get("password") });
  const username = String(form.get("username") ?? "").slice(0, 64);
  if (!parsed.success) return { error: "Enter a user name and a password.", username };
  const name = parsed.data.username;
  const head = await headers();
  const address = clientAddress(head) ?? "unknown";
  // Counted per name as its folded key: "Admin" and "ａｄｍｉｎ" share a counter.
  const key = nameKey(name);
  const gate = loginGateOfProcess.attempt(key, address);
  if (gate.waitMs > 0) {
    const who = gate.by === "address" ? "from your address" : "for this user name";
    return { error: `Too many failed logins ${who}. Try again in ${waitText(gate.waitMs)}.`, username };
  }
  // The name as typed, or any spelling of it (case, width): one person either way.
  const user = await db.user.findFirst({ where: userNamed(name) });
  let ok: boolean;
  try {
    ok = await verifyPassword(parsed.data.password, user?.passwordHash ?? DUMMY_HASH);
  } catch (err) {
    if (err instanceof GuesthouseError) return { error: err.message, username };
    throw err;
  }
  if (!user || !ok) {
    // Counted as a failure when it began (loginGate.attempt).
    return { error: "That user name and password do not match.", username };
  }
  // With a second factor, the password alone is not enough: a code (or a recovery code) too.
  // Until it is right the attempt stays counted as a failed login.
  if (user.totpEnabledAt) {
    const code = String(form.get("code") ?? "").trim();
    if (!code) return { error: null, username, needCode: true };
    if (!(await takeSecondFactor(user.id, code))) return { error: "That code is not right, or was used already. Type the six digits your app shows now, or a recovery code.", username, needCode: true };
  }
  loginGateOfProcess.succeeded(key, address);

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
