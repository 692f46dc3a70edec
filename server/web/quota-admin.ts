/**
 * Quotas as people manage them: limits set by admins, the usage every member of a team
 * sees against them, and requests for more (a member asks, with how much and why; an
 * admin approves, which sets the limit, or declines with a note; the member sees the
 * answer). The checks themselves are in server/web/quotas.ts.
 */
import { canAskForMore, canSeeUsage, canSetQuotas } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { recordEvent } from "./audit";
import { GuesthouseError } from "../domain/errors";
import { QUOTA_LABELS, QUOTA_RESOURCES, QUOTA_UNITS, type QuotaResource } from "../domain/types";
import { quantity, usagesIn } from "./quotas";

/** The largest limit taken, by unit: a million things, 1 PiB of memory, 4 PiB of disk (past that a number is not exact). */
const MAX_LIMIT = { count: 1_000_000, mib: 2 ** 30, bytes: 4 * 2 ** 50 } as const;
const UNIT_BYTES: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };
/** Open requests a member may have at once. */
const MAX_OPEN_REQUESTS = 5;

export function isQuotaResource(value: unknown): value is QuotaResource {
  return typeof value === "string" && (QUOTA_RESOURCES as readonly string[]).includes(value);
}

function resourceOf(value: unknown): QuotaResource {
  if (!isQuotaResource(value)) throw new GuesthouseError("invalid-input", `There is no quota "${String(value).slice(0, 40)}". The quotas are: ${QUOTA_RESOURCES.join(", ")}.`);
  return value;
}

/**
 * A limit as people write it: a whole number of guests, vCPUs, snapshots or tasks; a
 * size with a unit for memory and disk or ISO space ("64G", "2T", "0"). Empty: no limit.
 */
export function parseLimit(resource: QuotaResource, raw: unknown): number | null {
  const text = typeof raw === "string" ? raw.trim() : typeof raw === "number" ? String(raw) : "";
  if (text === "") return null;
  const unit = QUOTA_UNITS[resource];
  const what = QUOTA_LABELS[resource];
  if (/^-/.test(text)) throw new GuesthouseError("invalid-input", `A limit of ${what} cannot be negative.`);
  let value: number;
  if (unit === "count") {
    if (!/^\d{1,10}$/.test(text)) throw new GuesthouseError("invalid-input", `A limit of ${what} is a whole number, like 10.`);
    value = Number(text);
  } else {
    const match = /^(\d{1,12}(?:\.\d{1,3})?)\s*([KMGTP])?(?:I?B)?$/i.exec(text);
    if (!match || (!match[2] && Number(match[1]) !== 0)) {
      throw new GuesthouseError("invalid-input", `A limit of ${what} is a size with its unit, like 64G or 2T (or 0).`);
    }
    const bytes = Number(match[1]) * (match[2] ? UNIT_BYTES[match[2].toUpperCase()]! : 1);
    value = unit === "mib" ? Math.floor(bytes / 2 ** 20) : Math.floor(bytes);
  }
  if (!Number.isSafeInteger(value) || value > MAX_LIMIT[unit]) {
    throw new GuesthouseError("invalid-input", `A limit of ${what} can be at most ${quantity(resource, MAX_LIMIT[unit])}; leave it empty for no limit.`);
  }
  return value;
}

/** Sets (or, empty, removes) a team's limit, or one member's within it (`userId`). Admins. */
export async function setLimit(actor: SessionUser, teamId: string, userId: string, rawResource: unknown, raw: unknown): Promise<number | null> {
  if (!canSetQuotas(actor)) throw new GuesthouseError("forbidden", "Only admins set quotas; ask one for more on the Quotas page.");
  const resource = resourceOf(rawResource);
  const limit = parseLimit(resource, raw);
  const team = await db.team.findUnique({ where: { id: String(teamId) }, select: { id: true } });
  if (!team) throw new GuesthouseError("not-found", "There is no such team.");
  if (userId) {
    const member = await db.membership.findUnique({ where: { userId_teamId: { userId: String(userId), teamId: team.id } }, select: { userId: true } });
    if (!member) throw new GuesthouseError("not-found", "That user is not in this team.");
  }
  const key = { teamId_userId_resource: { teamId: team.id, userId: String(userId), resource } };
  if (limit === null) await db.quota.deleteMany({ where: { teamId: team.id, userId: String(userId), resource } });
  else await db.quota.upsert({ where: key, create: { teamId: team.id, userId: String(userId), resource, limit: BigInt(limit) }, update: { limit: BigInt(limit) } });
  await recordEvent("quota-set", true, `set the ${resource} quota${userId ? " of a member" : ""} to ${limit ?? "no limit"}`, actor, null, {
    teamId: team.id,
    params: { resource, limit, ...(userId ? { userId } : {}) },
  }).catch(() => {});
  return limit;
}

export interface ResourceUsage {
  resource: QuotaResource;
  used: number;
  limit: number | null;
}

export interface TeamUsage {
  id: string;
  name: string;
  resources: ResourceUsage[];
  /** Members with limits of their own (what they use of those), and the asking user (all they use). */
  members: Array<{ userId: string; username: string; resources: ResourceUsage[] }>;
}

/**
 * Usage against limits of every team `actor` may see it of (admins: all): for each team,
 * the team's, the actor's own, and that of each member with limits of their own. Counted
 * by the very statement the checks run (usagesIn), so the page and a refusal cannot
 * disagree: one statement per team and member shown.
 */
export async function usageOverview(actor: SessionUser): Promise<TeamUsage[]> {
  const teams = await db.team.findMany({
    where: actor.admin ? {} : { id: { in: [...actor.teams.keys()] } },
    orderBy: { nameKey: "asc" },
    select: { id: true, name: true },
  });
  const visible = teams.filter((t) => canSeeUsage(actor, t.id));
  const withLimits = await db.quota.findMany({
    where: { teamId: { in: visible.map((t) => t.id) }, userId: { not: "" } },
    distinct: ["teamId", "userId"],
    select: { teamId: true, userId: true },
  });
  const names = new Map((await db.user.findMany({ where: { id: { in: withLimits.map((l) => l.userId) } }, select: { id: true, username: true } })).map((u) => [u.id, u.username]));
  const rows = (used: Record<QuotaResource, number>, limits: Record<QuotaResource, number | null>, all: boolean): ResourceUsage[] =>
    QUOTA_RESOURCES.filter((r) => all || limits[r] !== null).map((r) => ({ resource: r, used: used[r], limit: limits[r] }));
  const result: TeamUsage[] = [];
  for (const team of visible) {
    const own = actor.teams.has(team.id);
    const first = await usagesIn(db, team.id, own ? actor.id : "");
    const members: TeamUsage["members"] = [];
    // The actor first (everyone sees all they use, limits or not), then the members with limits of their own.
    if (own) members.push({ userId: actor.id, username: actor.username, resources: rows(first.user, first.limits.user, true) });
    for (const { userId } of withLimits.filter((l) => l.teamId === team.id && l.userId !== actor.id)) {
      const theirs = await usagesIn(db, team.id, userId);
      members.push({ userId, username: names.get(userId) ?? "a former user", resources: rows(theirs.user, theirs.limits.user, false) });
    }
    result.push({ ...team, resources: rows(first.team, first.limits.team, true), members });
  }
  return result;
}

/** A member asks for a higher limit of their team (or their own within it): how much, and why. */
export async function askForMore(actor: SessionUser, input: { teamId: unknown; resource: unknown; scope: unknown; amount: unknown; reason: unknown }): Promise<{ id: string }> {
  const teamId = String(input.teamId ?? "");
  if (!canAskForMore(actor, teamId)) throw new GuesthouseError("forbidden", "You ask for more only for a team you make things in.");
  const resource = resourceOf(input.resource);
  const scope = input.scope === "user" ? "user" : input.scope === "team" ? "team" : null;
  if (!scope) throw new GuesthouseError("invalid-input", 'Ask for the team\'s limit ("team") or your own within it ("user").');
  const amount = parseLimit(resource, input.amount);
  if (amount === null) throw new GuesthouseError("invalid-input", "Say how much you need: the limit you ask for.");
  const reason = typeof input.reason === "string" ? input.reason.trim() : "";
  if (reason.length < 3 || reason.length > 500) throw new GuesthouseError("invalid-input", "Say in 3 to 500 characters why you need it: an admin decides on it.");
  const current = await db.quota.findUnique({ where: { teamId_userId_resource: { teamId, userId: scope === "user" ? actor.id : "", resource } }, select: { limit: true } });
  if (!current) throw new GuesthouseError("conflict", `There is no limit of ${QUOTA_LABELS[resource]} ${scope === "user" ? "for you" : "for this team"} to raise.`);
  if (amount <= Number(current.limit)) {
    throw new GuesthouseError("invalid-input", `The limit is ${quantity(resource, Number(current.limit))} already; ask for more than that.`);
  }
  const open = await db.quotaRequest.count({ where: { userId: actor.id, state: "open" } });
  if (open >= MAX_OPEN_REQUESTS) throw new GuesthouseError("conflict", `You have ${open} requests waiting for an answer already; wait for those first.`);
  return db.quotaRequest.create({ select: { id: true }, data: { teamId, userId: actor.id, resource, scope, amount: BigInt(amount), reason } });
}

/**
 * An admin's answer: approving sets the limit asked for (in the same transaction as the
 * answer, and only for a request still open: two admins answering at once answer once).
 */
export async function decideRequest(actor: SessionUser, id: unknown, approve: boolean, rawNote: unknown): Promise<{ teamId: string; resource: string; amount: bigint }> {
  if (!canSetQuotas(actor)) throw new GuesthouseError("forbidden", "Only admins answer requests for more.");
  const note = typeof rawNote === "string" ? rawNote.trim().slice(0, 500) : "";
  if (!approve && note.length === 0) throw new GuesthouseError("invalid-input", "Say why you decline it: the member sees your note.");
  return db.$transaction(async (tx) => {
    const request = await tx.quotaRequest.findUnique({ where: { id: String(id) } });
    if (!request) throw new GuesthouseError("not-found", "There is no such request.");
    const { count } = await tx.quotaRequest.updateMany({
      where: { id: request.id, state: "open" },
      data: { state: approve ? "approved" : "declined", note, decidedBy: actor.username, decidedAt: new Date() },
    });
    if (count === 0) throw new GuesthouseError("conflict", `This request was ${request.state} already.`);
    if (approve) {
      const userId = request.scope === "user" ? request.userId : "";
      await tx.quota.upsert({
        where: { teamId_userId_resource: { teamId: request.teamId, userId, resource: request.resource } },
        create: { teamId: request.teamId, userId, resource: request.resource, limit: request.amount },
        update: { limit: request.amount },
      });
    }
    return { teamId: request.teamId, resource: request.resource, amount: request.amount };
  });
}

/** Requests as `actor` sees them: admins every open one and the last answered; others their own. */
export async function requestsFor(actor: SessionUser) {
  const select = {
    id: true,
    resource: true,
    scope: true,
    amount: true,
    reason: true,
    state: true,
    note: true,
    decidedBy: true,
    decidedAt: true,
    createdAt: true,
    team: { select: { id: true, name: true } },
    user: { select: { username: true } },
  } as const;
  const [open, mine] = await Promise.all([
    canSetQuotas(actor) ? db.quotaRequest.findMany({ where: { state: "open" }, orderBy: { createdAt: "asc" }, take: 200, select }) : Promise.resolve([]),
    db.quotaRequest.findMany({ where: { userId: actor.id }, orderBy: { createdAt: "desc" }, take: 50, select }),
  ]);
  return { open, mine };
}
