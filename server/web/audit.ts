/**
 * The audit trail: every change anyone makes, one row each, never changed afterwards
 * (Event rows are only added, and removed when older than GUESTHOUSE_AUDIT_DAYS). A row
 * says who acted (their name then, and the role they acted in), in which team, what they
 * did to what, with which parameters (secrets left out), how it ended, from where, when.
 * Admins read all of it on the audit page; a team's owners their team's; each guest's
 * page shows its own. One place writes it (`recordEvent`) and one reads it (`auditWhere`).
 */
import { canManageHost, ownedTeams, type TeamRole } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { clientAddress } from "./client-address";

/** Parameter names whose values never reach the trail. */
const SECRET = /pass|secret|token|key|cookie/i;

/** Parameters as they may be kept: secrets replaced, long values cut. */
export function scrubParams(params: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(params).map(([name, value]) => [name, SECRET.test(name) ? "(not kept)" : typeof value === "string" ? value.slice(0, 200) : value]),
  );
}

/**
 * The address of the request being served, when there is one. next/headers is loaded
 * here, not at the top: the web's own server (server/web/main.ts) loads this module
 * outside any request, where Next's request storage does not exist.
 */
async function requestAddress(): Promise<string | null> {
  try {
    const { headers } = await import("next/headers");
    return clientAddress(await headers());
  } catch {
    return null; // not in a request (a background task)
  }
}

/**
 * Records one change by `actor` (null: the system). The team is the one given, else the
 * guest's when there is one, else the actor's current team; the role, what the actor was in it (or admin).
 */
export async function recordEvent(
  kind: string,
  ok: boolean,
  message: string,
  actor: SessionUser | null,
  guestId: string | null,
  { teamId: team, params }: { teamId?: string | null; params?: Record<string, unknown> } = {},
): Promise<void> {
  const guestTeam = guestId ? (await db.guest.findUnique({ where: { id: guestId }, select: { teamId: true } }))?.teamId : null;
  const teamId = team ?? guestTeam ?? actor?.teamId ?? null;
  const role: TeamRole | "admin" | null = actor ? (actor.admin ? "admin" : (teamId ? (actor.teams.get(teamId) ?? null) : null)) : null;
  await db.event.create({
    data: {
      kind,
      ok,
      message: message.slice(0, 1000),
      userId: actor?.id ?? null,
      username: actor?.username ?? null,
      role,
      teamId,
      guestId,
      params: params ? JSON.stringify(scrubParams(params)) : null,
      address: await requestAddress(),
    },
  });
}

/** What the audit page filters by. */
export interface AuditFilter {
  user?: string;
  teamId?: string;
  action?: string;
  target?: string;
  from?: Date;
  to?: Date;
}

/** The rows `actor` may read (admins: all; team owners: their teams'), narrowed by `filter`. */
export function auditWhere(actor: SessionUser, filter: AuditFilter) {
  const owned = ownedTeams(actor);
  return {
    AND: [
      canManageHost(actor) ? {} : { teamId: { in: owned } },
      filter.user ? { username: { contains: filter.user } } : {},
      filter.teamId ? { teamId: filter.teamId } : {},
      filter.action ? { kind: filter.action } : {},
      filter.target ? { message: { contains: filter.target } } : {},
      filter.from ? { at: { gte: filter.from } } : {},
      filter.to ? { at: { lte: filter.to } } : {},
    ],
  };
}

/** Whether `actor` may read any of the trail (the page's link). */
export function canReadAudit(actor: SessionUser): boolean {
  return canManageHost(actor) || ownedTeams(actor).length > 0;
}

/** Removes rows older than `days`; returns how many went. */
export async function pruneAudit(days: number): Promise<number> {
  const { count } = await db.event.deleteMany({ where: { at: { lt: new Date(Date.now() - days * 24 * 3600_000) } } });
  return count;
}

/** One row as a CSV line (RFC 4180 quoting; a leading =, +, - or @ defused for spreadsheets). */
export function csvLine(values: Array<string | null | undefined>): string {
  return values
    .map((v) => {
      let text = v ?? "";
      if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
      return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    })
    .join(",");
}
