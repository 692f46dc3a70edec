/**
 * Single sign-on with OpenID Connect (authorization code flow with PKCE, through the
 * `openid-client` library): a company's identity provider says who someone is and, in
 * one claim (`groups` by default), which of its groups they are in; a mapping the admin
 * configures turns groups into teams and roles of this dashboard (and, optionally, the
 * admin flag).
 *
 *   GUESTHOUSE_SSO_ISSUER         the provider's issuer URL (discovery at /.well-known/openid-configuration)
 *   GUESTHOUSE_SSO_CLIENT_ID      this dashboard's client id there
 *   GUESTHOUSE_SSO_CLIENT_SECRET  its secret (none: a public client, PKCE alone)
 *   GUESTHOUSE_SSO_CLAIM          the claim with the groups (default "groups")
 *   GUESTHOUSE_SSO_ROLES          "group=Team:role, group2=Team:owner, admins=admin"
 *   GUESTHOUSE_SSO_LABEL          the login page's button (default "Log in with single sign-on")
 *
 * Every login brings the user's memberships of the mapped teams in line with the claim
 * (added, changed, or taken away); teams the mapping does not name are managed in the
 * dashboard as before. A user is known by the provider's subject, never by a name: a
 * provider's "mia" does not become the dashboard's existing password account "mia".
 */
import * as oidc from "openid-client";
import { z } from "zod";
import type { PrismaClient } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import { nameKey } from "../domain/names";
import { isTeamRole, TEAM_ROLES, type TeamRole } from "./policy";

export interface SsoConfig {
  issuer: URL;
  clientId: string;
  clientSecret: string | null;
  claim: string;
  /** Claim value → a team's role, or the admin flag. */
  roles: Array<{ group: string; team: string; role: TeamRole } | { group: string; admin: true }>;
  label: string;
}

const env = z.object({
  GUESTHOUSE_SSO_ISSUER: z.string().url().optional(),
  GUESTHOUSE_SSO_CLIENT_ID: z.string().min(1).max(256).optional(),
  GUESTHOUSE_SSO_CLIENT_SECRET: z.string().min(1).max(1024).optional(),
  GUESTHOUSE_SSO_CLAIM: z.string().regex(/^[A-Za-z0-9_:.\/-]{1,128}$/).default("groups"),
  GUESTHOUSE_SSO_ROLES: z.string().max(10_000).default(""),
  GUESTHOUSE_SSO_LABEL: z.string().min(1).max(64).default("Log in with single sign-on"),
});

/** The configured provider, or null when single sign-on is off; a wrong setting is an error naming it. */
export function ssoConfig(environment: Record<string, string | undefined> = process.env): SsoConfig | null {
  const parsed = env.safeParse(environment);
  if (!parsed.success) throw new Error(`Single sign-on is misconfigured: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const e = parsed.data;
  if (!e.GUESTHOUSE_SSO_ISSUER) return null;
  if (!e.GUESTHOUSE_SSO_CLIENT_ID) throw new Error("Single sign-on is misconfigured: GUESTHOUSE_SSO_ISSUER is set, GUESTHOUSE_SSO_CLIENT_ID is not.");
  return {
    issuer: new URL(e.GUESTHOUSE_SSO_ISSUER),
    clientId: e.GUESTHOUSE_SSO_CLIENT_ID,
    clientSecret: e.GUESTHOUSE_SSO_CLIENT_SECRET ?? null,
    claim: e.GUESTHOUSE_SSO_CLAIM,
    roles: parseRoles(e.GUESTHOUSE_SSO_ROLES),
    label: e.GUESTHOUSE_SSO_LABEL,
  };
}

/** "group=Team:role, admins=admin" (commas, semicolons or new lines between entries). */
export function parseRoles(text: string): SsoConfig["roles"] {
  return text
    .split(/[,;\n]/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const at = entry.indexOf("=");
      const group = entry.slice(0, at).trim();
      const target = entry.slice(at + 1).trim();
      if (at < 1 || !target) throw new Error(`Single sign-on is misconfigured: GUESTHOUSE_SSO_ROLES entry "${entry}" is not "<group>=<team>:<role>" or "<group>=admin".`);
      if (target === "admin") return { group, admin: true as const };
      const colon = target.lastIndexOf(":");
      const team = target.slice(0, colon).trim();
      const role = target.slice(colon + 1).trim();
      if (colon < 1 || !team || !isTeamRole(role)) {
        throw new Error(`Single sign-on is misconfigured: GUESTHOUSE_SSO_ROLES entry "${entry}": the role after the team's name is one of ${TEAM_ROLES.join(", ")}.`);
      }
      return { group, team: team.normalize("NFKC"), role };
    });
}

const RANK: Record<TeamRole, number> = { viewer: 0, member: 1, operator: 2, owner: 3 };

/** The teams and roles (the highest where several groups name one team), and the admin flag, a list of groups gives. */
export function rolesFor(config: SsoConfig, groups: readonly string[]): { teams: Map<string, TeamRole>; admin: boolean } {
  const teams = new Map<string, TeamRole>();
  let admin = false;
  for (const entry of config.roles) {
    if (!groups.includes(entry.group)) continue;
    if ("admin" in entry) admin = true;
    else if (!teams.has(entry.team) || RANK[entry.role] > RANK[teams.get(entry.team)!]) teams.set(entry.team, entry.role);
  }
  return { teams, admin };
}

/** The groups in a claim's value: an array of strings, or one string. */
export function groupsOf(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string").slice(0, 1000) : [];
}

const discovered = new Map<string, Promise<oidc.Configuration>>();

/** The provider's configuration (discovered once per process; again after a failure). */
export function providerOf(config: SsoConfig): Promise<oidc.Configuration> {
  const key = `${config.issuer.href} ${config.clientId}`;
  let found = discovered.get(key);
  if (!found) {
    const auth = config.clientSecret ? oidc.ClientSecretPost(config.clientSecret) : oidc.None();
    // A provider on plain http is only ever allowed on loopback (a test, or a provider on this machine).
    const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(config.issuer.hostname);
    found = oidc.discovery(config.issuer, config.clientId, undefined, auth, loopback ? { execute: [oidc.allowInsecureRequests] } : undefined);
    found.catch(() => discovered.delete(key));
    discovered.set(key, found);
  }
  return found;
}

/** What the login's start keeps for its callback (in a short-lived cookie): PKCE's verifier, the state, the nonce. */
export interface SsoStart {
  verifier: string;
  state: string;
  nonce: string;
}

/** The provider's address to send the browser to, and what the callback must check. */
export async function startSso(config: SsoConfig, redirectUri: string): Promise<{ url: URL; pending: SsoStart }> {
  const provider = await providerOf(config);
  const pending = { verifier: oidc.randomPKCECodeVerifier(), state: oidc.randomState(), nonce: oidc.randomNonce() };
  const url = oidc.buildAuthorizationUrl(provider, {
    redirect_uri: redirectUri,
    scope: `openid profile email${config.claim === "groups" ? " groups" : ""}`,
    code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
    code_challenge_method: "S256",
    state: pending.state,
    nonce: pending.nonce,
  });
  return { url, pending };
}

/** Who the provider says came back: the ID token's claims (checked: issuer, audience, nonce), with userinfo's for a claim the token lacks. */
export async function finishSso(config: SsoConfig, callback: URL, pending: SsoStart): Promise<Record<string, unknown>> {
  const provider = await providerOf(config);
  const tokens = await oidc.authorizationCodeGrant(provider, callback, { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce, idTokenExpected: true });
  const claims = tokens.claims();
  if (!claims) throw new GuesthouseError("unauthenticated", "The identity provider sent no ID token.");
  if (claims[config.claim] !== undefined) return { ...claims };
  const info = await oidc.fetchUserInfo(provider, tokens.access_token, claims.sub);
  return { ...info, ...claims, [config.claim]: info[config.claim] };
}

/**
 * The dashboard's user for a provider's claims: found by the provider's subject or made,
 * with the mapped teams' memberships and the admin flag brought in line with the groups.
 * Refused: a disabled user, and someone the mapping gives no team (nor admin).
 */
export async function ssoUser(db: PrismaClient, config: SsoConfig, claims: Record<string, unknown>): Promise<{ id: string; username: string; created: boolean }> {
  const sub = typeof claims.sub === "string" ? claims.sub : "";
  if (!sub || sub.length > 255) throw new GuesthouseError("unauthenticated", "The identity provider sent no subject.");
  const subject = `${config.issuer.href} ${sub}`;
  const { teams, admin } = rolesFor(config, groupsOf(claims[config.claim]));
  const managesAdmin = config.roles.some((r) => "admin" in r);
  const mappedTeams = [...new Set(config.roles.flatMap((r) => ("team" in r ? [r.team] : [])))];
  return db.$transaction(async (tx) => {
    let user = await tx.user.findUnique({ where: { ssoSubject: subject }, select: { id: true, username: true, role: true, disabledAt: true } });
    if (user?.disabledAt) throw new GuesthouseError("forbidden", "Your account here is disabled. Ask an admin.");
    if (!user && teams.size === 0 && !admin) {
      throw new GuesthouseError("forbidden", `Your identity provider puts you in no team of this dashboard (its "${config.claim}" claim names none it maps). Ask an admin.`);
    }
    // The teams the mapping names exist (made at the first login that needs them).
    const teamIds = new Map<string, string>();
    for (const name of mappedTeams) {
      const found = (await tx.team.findUnique({ where: { nameKey: nameKey(name) }, select: { id: true } })) ?? (teams.has(name) ? await tx.team.create({ data: { name, nameKey: nameKey(name) }, select: { id: true } }) : null);
      if (found) teamIds.set(name, found.id);
    }
    const created = !user;
    if (!user) {
      const firstTeam = teamIds.get([...teams.keys()][0] ?? "") ?? (await tx.team.findFirstOrThrow({ orderBy: { createdAt: "asc" }, select: { id: true } })).id;
      const username = await freeUsername(tx, claims);
      // No password: "!sso" is no hash verifyPassword takes, so only the provider logs them in.
      user = await tx.user.create({
        data: { username, usernameKey: nameKey(username), passwordHash: "!sso", ssoSubject: subject, teamId: firstTeam, role: admin ? "admin" : "member" },
        select: { id: true, username: true, role: true, disabledAt: true },
      });
    }
    for (const [name, teamId] of teamIds) {
      const role = teams.get(name);
      if (role) await tx.membership.upsert({ where: { userId_teamId: { userId: user.id, teamId } }, create: { userId: user.id, teamId, role }, update: { role } });
      else await tx.membership.deleteMany({ where: { userId: user.id, teamId } });
    }
    if (managesAdmin && (user.role === "admin") !== admin) {
      // The last admin stays one, whatever the provider says now: someone must be able to fix the mapping.
      const others = await tx.user.count({ where: { role: "admin", disabledAt: null, id: { not: user.id } } });
      if (admin || others > 0) await tx.user.update({ where: { id: user.id }, data: { role: admin ? "admin" : "member" } });
    }
    return { id: user.id, username: user.username, created };
  });
}

type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];

/** A user name for a new user: the provider's preferred name (or e-mail's local part), made free with -2, -3 … */
async function freeUsername(tx: Tx, claims: Record<string, unknown>): Promise<string> {
  const wanted = [claims.preferred_username, typeof claims.email === "string" ? claims.email.split("@")[0] : undefined, claims.sub].find((v) => typeof v === "string" && v.length > 0) as string;
  const base = (wanted.normalize("NFKC").replace(/[^\p{L}\p{N}._-]/gu, "-").replace(/^[^\p{L}\p{N}]+/u, "") || "user").slice(0, 56);
  for (let n = 1; n < 1000; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    if (!(await tx.user.findFirst({ where: { OR: [{ usernameKey: nameKey(name) }, { username: name }] }, select: { id: true } }))) return name;
  }
  throw new GuesthouseError("conflict", "No free user name is left for this person; ask an admin.");
}
