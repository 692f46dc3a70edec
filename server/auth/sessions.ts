/**
 * Login sessions, independent of Next.js so the console bridge can use them too.
 * The cookie holds a random secret; the database holds only its hash.
 */
import type { PrismaClient } from "../db/client";
import type { UserRole } from "../domain/types";
import { hashSecret, newSecret } from "./tokens";

export const SESSION_COOKIE = "gh_session";
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
