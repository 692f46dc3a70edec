/**
 * Login sessions, independent of Next.js so the console bridge can use them too.
 * The cookie holds a random secret; the database holds only its hash.
 */
import type { PrismaClient } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import { canWorkInTeam, isTeamRole, type TeamRole, type UserActor } from "./policy";
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

/** A signed-in user: who they are to the policy (server/auth/policy.ts), and the team this session works in. */
export interface SessionUser extends UserActor {
  username: string;
  /** Made with a one-time password not yet changed: nothing but changing it works. */
  mustChangePassword: boolean;
  /** In a team that requires a second factor, without one yet (a password login): nothing but setting it up works. */
  mustEnrollTotp: boolean;
  /** This session's id (the hash of its secret), to tell it apart on the account page. */
  sessionId: string;
  /** The team this session works in: new guests and disks go to it; the header switches it. */
  teamId: string;
  /** Acting through an API token limited to one team: that team (server/auth/api-tokens.ts). */
  tokenTeam?: string | null;
}

/** The roles a user holds, as the policy reads them. */
export function teamsOf(memberships: Array<{ teamId: string; role: string }>): Map<string, TeamRole> {
  return new Map(memberships.flatMap((m) => (isTeamRole(m.role) ? [[m.teamId, m.role] as const] : [])));
}

/** What a session records of where it came from (shown on the account page). */
export interface SessionOrigin {
  userAgent?: string | null;
  address?: string | null;
  /** How the user proved who they are: a password (and a second factor where they have one), or single sign-on. */
  via?: "password" | "sso";
}

export async function createSession(db: PrismaClient, userId: string, origin: SessionOrigin = {}): Promise<{ secret: string; expiresAt: Date }> {
  const secret = newSecret();
  const expiresAt = new Date(Date.now() + SESSION_TTL_MS);
  await db.session.create({
    data: { id: hashSecret(secret), userId, expiresAt, userAgent: origin.userAgent?.slice(0, 300) ?? null, address: origin.address?.slice(0, 64) ?? null, lastSeenAt: new Date(), via: origin.via ?? "password" },
  });
  return { secret, expiresAt };
}

/** How stale a session's "last seen" may get before a request writes it again. */
const LAST_SEEN_EVERY_MS = 60_000;

/**
 * A user's columns and one membership's, as the one-statement reads of a session and of an
 * API token (server/auth/api-tokens.ts) select them: one row per membership (one row with
 * null membership columns for a user in no team).
 */
export interface UserRow {
  userId: string;
  username: string;
  role: string;
  userTeamId: string;
  disabledAt: Date | string | number | null;
  mustChangePassword: boolean | number;
  memberTeamId: string | null;
  memberRole: string | null;
}

/** The user those rows describe, with their memberships. */
export function userOfRows(rows: [UserRow, ...UserRow[]]) {
  const [first] = rows;
  return {
    id: first.userId,
    username: first.username,
    role: first.role,
    teamId: first.userTeamId,
    disabledAt: first.disabledAt,
    mustChangePassword: Boolean(first.mustChangePassword),
    memberships: rows.filter((r) => r.memberTeamId !== null).map((r) => ({ teamId: r.memberTeamId!, role: r.memberRole! })),
  };
}

interface SessionRow extends UserRow {
  id: string;
  expiresAt: Date;
  sessionTeamId: string | null;
  lastSeenAt: Date | null;
  via: string;
  totpEnabledAt: Date | null;
  requireTotp: boolean | number | null;
}

/**
 * The signed-in user of a session secret, with everything the policy needs (their teams
 * and roles): one SQL statement per request, whatever the number of teams. Plain SQL
 * every database Guesthouse runs on reads the same (quoted names, joins).
 */
export async function userForSession(db: PrismaClient, secret: string | undefined | null): Promise<SessionUser | null> {
  if (!secret || secret.length > 200) return null;
  const rows = await db.$queryRaw<SessionRow[]>`
    SELECT s."id", s."expiresAt", s."teamId" AS "sessionTeamId", s."lastSeenAt", s."via",
           u."id" AS "userId", u."username", u."role", u."teamId" AS "userTeamId", u."disabledAt", u."mustChangePassword", u."totpEnabledAt",
           m."teamId" AS "memberTeamId", m."role" AS "memberRole", t."requireTotp"
      FROM "Session" s
      JOIN "User" u ON u."id" = s."userId"
      LEFT JOIN "Membership" m ON m."userId" = u."id"
      LEFT JOIN "Team" t ON t."id" = m."teamId"
     WHERE s."id" = ${hashSecret(secret)}`;
  const first = rows[0];
  const session = first && {
    id: first.id,
    expiresAt: new Date(first.expiresAt),
    teamId: first.sessionTeamId,
    lastSeenAt: first.lastSeenAt === null ? null : new Date(first.lastSeenAt),
    via: first.via,
    user: { ...userOfRows([first, ...rows.slice(1)]), totpEnabledAt: first.totpEnabledAt },
  };
  // A disabled user's sessions end: nothing of theirs is served until an admin enables them.
  if (!session || session.expiresAt.getTime() <= Date.now() || session.user.disabledAt) return null;
  const { user } = session;
  const teams = teamsOf(user.memberships);
  // The session's team while the user is still in it, else their default team, else any of theirs.
  const admin = user.role === "admin";
  const teamId = (admin && session.teamId) || ([session.teamId, user.teamId].find((t) => t && teams.has(t)) ?? teams.keys().next().value ?? user.teamId);
  if (!session.lastSeenAt || Date.now() - session.lastSeenAt.getTime() > LAST_SEEN_EVERY_MS) {
    await db.session.updateMany({ where: { id: session.id }, data: { lastSeenAt: new Date() } });
  }
  // A team requiring a second factor holds a password login without one at the account page.
  const mustEnrollTotp = session.via === "password" && !user.totpEnabledAt && rows.some((r) => r.memberTeamId !== null && Boolean(r.requireTotp));
  // Until a one-time password is changed, or a required second factor set up, the policy
  // allows nothing (only doing that works).
  return {
    kind: "user",
    id: user.id,
    username: user.username,
    admin,
    disabled: user.mustChangePassword || mustEnrollTotp,
    teams,
    teamId,
    mustChangePassword: user.mustChangePassword,
    mustEnrollTotp,
    sessionId: session.id,
  };
}

/**
 * Makes `teamId` the team this session works in. A user works in the teams they belong
 * to; an admin in any team.
 */
export async function switchSessionTeam(db: PrismaClient, secret: string, user: SessionUser, teamId: string): Promise<void> {
  if (!canWorkInTeam(user, teamId) || (await db.team.count({ where: { id: teamId } })) !== 1) {
    throw new GuesthouseError("not-found", "There is no such team, or you are not in it.");
  }
  await db.session.updateMany({ where: { id: hashSecret(secret), userId: user.id }, data: { teamId } });
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
