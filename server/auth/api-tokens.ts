/**
 * Personal API tokens, for scripts and the `guesthouse` command: `gh_` and 43 base64url
 * characters (256 random bits), shown once; only their SHA-256 is stored. Each has a name,
 * a scope (server/auth/policy.ts, TOKEN_SCOPES: read ⊂ operate ⊂ write ⊂ admin), an expiry,
 * and optionally one team it is limited to; its last use is recorded; revoking it works at
 * once (the next request finds no token). A token acts as its user, within its scope and
 * team: it never has rights its user lacks.
 */
import { z } from "zod";
import type { PrismaClient } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import { parseOrThrow } from "../domain/validation";
import { scopesUpTo, TOKEN_SCOPES, type TokenScope } from "./policy";
import { teamsOf, userOfRows, type SessionUser, type UserRow } from "./sessions";
import { hashSecret, newSecret } from "./tokens";

export const TOKEN_PREFIX = "gh_";
/** Tokens a user may hold at once (revoked and expired ones aside). */
const MAX_TOKENS = 50;
/** How stale a token's "last used" may get before a request writes it again. */
const LAST_USED_EVERY_MS = 60_000;

export const newTokenInput = z.strictObject({
  name: z.string().trim().min(1, "Name the token (what it is for).").max(64, "A token's name has at most 64 characters."),
  scope: z.enum(TOKEN_SCOPES, { message: `A scope is one of ${TOKEN_SCOPES.join(", ")}.` }),
  /** How long it works: 1 day to a year. */
  days: z.number().int("Days are a whole number.").min(1, "A token works for a day at least.").max(366, "A token works for a year at most."),
  /** The one team it is limited to; left out: every team of its user. */
  teamId: z.string().min(1).max(64).nullable().optional(),
});

/** A token as its owner sees it listed (never the token itself). */
export interface TokenView {
  id: string;
  name: string;
  scope: TokenScope;
  team: { id: string; name: string } | null;
  createdAt: Date;
  expiresAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const view = {
  id: true,
  name: true,
  scope: true,
  team: { select: { id: true, name: true } },
  createdAt: true,
  expiresAt: true,
  lastUsedAt: true,
  revokedAt: true,
} as const;

const highest = (actor: SessionUser): TokenScope | null => (actor.scopes ? ([...TOKEN_SCOPES].reverse().find((s) => actor.scopes!.has(s)) ?? null) : null);

/**
 * A new token for `actor` (shown this once). Made through a token, it can be no more than
 * that token: no higher scope, and the same team.
 */
export async function createToken(db: PrismaClient, actor: SessionUser, raw: unknown): Promise<{ token: string; view: TokenView }> {
  if (actor.disabled) throw new GuesthouseError("forbidden", "Your account is disabled.");
  const input = parseOrThrow(newTokenInput, raw, "The new token");
  const via = highest(actor);
  if (via && TOKEN_SCOPES.indexOf(input.scope) > TOKEN_SCOPES.indexOf(via)) {
    throw new GuesthouseError("forbidden", `A token with the ${via} scope makes tokens of that scope at most.`);
  }
  const teamId = input.teamId ?? null;
  if (teamId !== null && !actor.teams.has(teamId) && !actor.admin) throw new GuesthouseError("not-found", "You are in no team of that id.");
  if (actor.tokenTeam && teamId !== actor.tokenTeam) throw new GuesthouseError("forbidden", "A token limited to one team makes tokens for that team only.");
  const live = await db.apiToken.count({ where: { userId: actor.id, revokedAt: null, expiresAt: { gt: new Date() } } });
  if (live >= MAX_TOKENS) throw new GuesthouseError("conflict", `You have ${live} working tokens; revoke some first.`);
  const token = `${TOKEN_PREFIX}${newSecret()}`;
  const row = await db.apiToken.create({
    data: { id: hashSecret(token), userId: actor.id, name: input.name, scope: input.scope, teamId, expiresAt: new Date(Date.now() + input.days * 86_400_000) },
    select: view,
  });
  return { token, view: { ...row, scope: row.scope as TokenScope } };
}

/** The user's tokens, newest first. */
export async function listTokens(db: PrismaClient, actor: SessionUser): Promise<TokenView[]> {
  const rows = await db.apiToken.findMany({ where: { userId: actor.id }, orderBy: { createdAt: "desc" }, select: view });
  return rows.map((r) => ({ ...r, scope: r.scope as TokenScope }));
}

/** Revokes one of the user's tokens: the next request with it finds none. */
export async function revokeToken(db: PrismaClient, actor: SessionUser, id: unknown): Promise<void> {
  const { count } = await db.apiToken.updateMany({ where: { id: String(id).slice(0, 64), userId: actor.id, revokedAt: null }, data: { revokedAt: new Date() } });
  if (count === 0) throw new GuesthouseError("not-found", "You have no working token of that id.");
}

interface TokenRow extends UserRow {
  id: string;
  scope: string;
  teamId: string | null;
  expiresAt: Date | string | number;
  revokedAt: Date | string | number | null;
  lastUsedAt: Date | string | number | null;
}

/**
 * The user a token acts as, within its scope and team; null for anything that is not a
 * working token (unknown, revoked, expired, its user disabled or with a one-time password).
 * One SQL statement per request, as a session's read (plain SQL both databases run).
 */
export async function tokenUser(db: PrismaClient, token: string | null | undefined): Promise<SessionUser | null> {
  if (!token || !token.startsWith(TOKEN_PREFIX) || token.length > 100) return null;
  const rows = await db.$queryRaw<TokenRow[]>`
    SELECT k."id", k."scope", k."teamId", k."expiresAt", k."revokedAt", k."lastUsedAt",
           u."id" AS "userId", u."username", u."role", u."teamId" AS "userTeamId", u."disabledAt", u."mustChangePassword",
           m."teamId" AS "memberTeamId", m."role" AS "memberRole"
      FROM "ApiToken" k
      JOIN "User" u ON u."id" = k."userId"
      LEFT JOIN "Membership" m ON m."userId" = u."id"
     WHERE k."id" = ${hashSecret(token)}`;
  const first = rows[0];
  const row = first && {
    id: first.id,
    scope: first.scope,
    teamId: first.teamId,
    expiresAt: new Date(first.expiresAt),
    revokedAt: first.revokedAt === null ? null : new Date(first.revokedAt),
    lastUsedAt: first.lastUsedAt === null ? null : new Date(first.lastUsedAt),
    user: userOfRows([first, ...rows.slice(1)]),
  };
  if (!row || row.revokedAt || row.expiresAt.getTime() <= Date.now()) return null;
  const { user } = row;
  if (user.disabledAt || user.mustChangePassword) return null;
  const all = teamsOf(user.memberships);
  const teams = row.teamId ? new Map([...all].filter(([t]) => t === row.teamId)) : all;
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > LAST_USED_EVERY_MS) {
    await db.apiToken.updateMany({ where: { id: row.id }, data: { lastUsedAt: new Date() } });
  }
  const scope = (TOKEN_SCOPES as readonly string[]).includes(row.scope) ? (row.scope as TokenScope) : "read";
  return {
    kind: "user",
    id: user.id,
    username: user.username,
    // A token limited to one team acts in that team only, an admin's too.
    admin: user.role === "admin" && !row.teamId,
    disabled: false,
    teams,
    teamId: row.teamId ?? ([user.teamId].find((t) => teams.has(t)) ?? teams.keys().next().value ?? user.teamId),
    mustChangePassword: false,
    mustEnrollTotp: false,
    sessionId: `token:${row.id}`,
    scopes: scopesUpTo(scope),
    tokenTeam: row.teamId,
  };
}

/** The token of an `Authorization: Bearer …` header; null for none, or another scheme. */
export function bearerToken(header: string | null | undefined): string | null {
  return (header && /^Bearer\s+(\S{1,200})$/i.exec(header)?.[1]) || null;
}

/** The user an Authorization header's token acts as, or a refusal that says what to do. */
export async function bearerUser(db: PrismaClient, header: string): Promise<SessionUser> {
  const user = await tokenUser(db, bearerToken(header));
  if (!user) throw new GuesthouseError("unauthenticated", "The token is unknown, revoked or expired. Make a new one on your account page.");
  return user;
}
