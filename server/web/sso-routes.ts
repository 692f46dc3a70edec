/**
 * The two steps of a single sign-on login as the web serves them (app/auth/sso/*): the
 * start sends the browser to the identity provider with PKCE, a state and a nonce kept
 * in a short-lived cookie; the callback checks what came back, finds or makes the user
 * (server/auth/sso.ts), opens a session and records the login.
 */
import { cookies, headers } from "next/headers";
import { createSession, overTls, sessionCookieName } from "../auth/sessions";
import { finishSso, ssoConfig, ssoUser, startSso, type SsoStart } from "../auth/sso";
import { db } from "../db/client";
import { toGuesthouseError } from "../domain/errors";
import { recordEvent } from "./audit";
import { clientAddress } from "./client-address";

const PENDING_COOKIE = "gh_sso";
const PENDING_S = 600;
const CALLBACK = "/auth/sso/callback";

/** This dashboard's origin as the browser sees it (the identity provider checks the callback against the ones registered). */
async function originOf(): Promise<{ origin: string; secure: boolean }> {
  const head = await headers();
  const secure = overTls(Object.fromEntries(head.entries()));
  return { origin: `${secure ? "https" : "http"}://${head.get("host") ?? "localhost"}`, secure };
}

const toLogin = (origin: string, problem: string) => Response.redirect(`${origin}/login?sso_error=${encodeURIComponent(problem.slice(0, 300))}`, 303);

export async function ssoStart(): Promise<Response> {
  const config = ssoConfig();
  const { origin, secure } = await originOf();
  if (!config) return toLogin(origin, "Single sign-on is not set up here.");
  try {
    const { url, pending } = await startSso(config, `${origin}${CALLBACK}`);
    (await cookies()).set(PENDING_COOKIE, Buffer.from(JSON.stringify(pending)).toString("base64url"), { httpOnly: true, sameSite: "lax", secure, path: "/auth/sso", maxAge: PENDING_S });
    return Response.redirect(url.href, 303);
  } catch (err) {
    console.error("sso: could not start a login:", err);
    return toLogin(origin, "The identity provider cannot be reached. Try again, or log in with your password.");
  }
}

export async function ssoCallback(request: Request): Promise<Response> {
  const config = ssoConfig();
  const { origin, secure } = await originOf();
  if (!config) return toLogin(origin, "Single sign-on is not set up here.");
  const jar = await cookies();
  const raw = jar.get(PENDING_COOKIE)?.value;
  jar.delete({ name: PENDING_COOKIE, path: "/auth/sso" });
  let pending: SsoStart;
  try {
    pending = JSON.parse(Buffer.from(raw ?? "", "base64url").toString("utf8")) as SsoStart;
    if (typeof pending.verifier !== "string" || typeof pending.state !== "string" || typeof pending.nonce !== "string") throw new Error("incomplete");
  } catch {
    return toLogin(origin, "This login took too long or began in another browser. Start it again.");
  }
  const head = await headers();
  try {
    const incoming = new URL(request.url);
    const claims = await finishSso(config, new URL(`${origin}${CALLBACK}${incoming.search}`), pending);
    const user = await ssoUser(db, config, claims);
    const session = await createSession(db, user.id, { userAgent: head.get("user-agent"), address: clientAddress(head), via: "sso" });
    jar.set(sessionCookieName(secure), session.secret, { httpOnly: true, sameSite: "lax", secure, path: "/", expires: session.expiresAt });
    await recordEvent("sso-login", true, `${user.username} logged in with single sign-on${user.created ? " (a new account)" : ""}`, null, null, { params: { username: user.username } }).catch(() => {});
    return Response.redirect(`${origin}/`, 303);
  } catch (err) {
    const error = toGuesthouseError(err);
    // openid-client's errors (a state that does not match, a token that does not check out) are not GuesthouseErrors.
    if (error.code === "internal") console.error("sso: a login failed:", err);
    return toLogin(origin, error.code === "internal" ? "The identity provider's answer did not check out. Start the login again." : error.message);
  }
}
