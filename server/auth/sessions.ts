/**
 * Login sessions, independent of Next.js so the console bridge can use them too.
 * The cookie holds a random secret; the database holds only its hash.
 */
import type { PrismaClient } from "../db/client";
import type { UserRole } from "../domain/types";
import { hashSecret, newSecret } from "./tokens";

export const SESSION_COOKIE = "gh_session";
/**
 * The session cookie's name over TLS: `__Host-` makes the browser keep it only if it is
 * Secure, for this host alone, path /, so no other site or subdomain can set or shadow it.
 */
export const TLS_SESSION_COOKIE = "__Host-gh_session";

/** The session cookie's name for a request that came over TLS (`secure`) or not. */
export function sessionCookieName(secure: boolean): string {
  return secure ? TLS_SESSION_COOKIE : SESSION_COOKIE;
}

/**
 * Whether a request reached the dashboard over TLS: its own socket, or the reverse proxy
 * in front of it saying so (X-Forwarded-Proto: https, as the README asks of proxies).
 */
export function overTls(headers: { [name: string]: string | string[] | undefined }, encrypted = false): boolean {
  const proto = headers["x-forwarded-proto"];
  return encrypted || (Array.isArray(proto) ? proto[0] : proto)?.split(",")[0]?.trim() === "https";
}

/** The session secret a raw request carries, under the one name its transport allows (over TLS only the `__Host-` one). */
export function sessionSecretOf(req: { headers: { [name: string]: string | string[] | undefined }; socket?: unknown }): string | null {
  const encrypted = Boolean((req.socket as { encrypted?: boolean } | undefined)?.encrypted);
  const header = req.headers.cookie;
  return cookieFromHeader(Array.isArray(header) ? header.join("; ") : header, sessionCookieName(overTls(req.headers, encrypted)));
}
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

export interface SessionUser {
  id: string;
  username: string;
  role: UserRole;
  teamId: string;
}

export async function createSession(db: PrismaClient, userId: string): Promise<{ secret: string; expiresAt: Date }> {
  const secret = newSecret();
  const expiresAt = new Date(Date.now() + SESSION_TTL_MS);
  await db.session.create({ data: { id: hashSecret(secret), userId, expiresAt } });
  return { secret, expiresAt };
}

export async function userForSession(db: PrismaClient, secret: string | undefined | null): Promise<SessionUser | null> {
  if (!secret || secret.length > 200) return null;
  const session = await db.session.findUnique({
    where: { id: hashSecret(secret) },
    select: { expiresAt: true, user: { select: { id: true, username: true, role: true, teamId: true } } },
  });
  if (!session || session.expiresAt.getTime() <= Date.now()) return null;
  return { ...session.user, role: session.user.role === "admin" ? "admin" : "member" };
}

export async function deleteSession(db: PrismaClient, secret: string): Promise<void> {
  await db.session.deleteMany({ where: { id: hashSecret(secret) } });
}

/** Reads one cookie from a raw Cookie header (for the websocket upgrade). */
export function cookieFromHeader(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null; // a malformed cookie is no session
      }
    }
  }
  return null;
}
