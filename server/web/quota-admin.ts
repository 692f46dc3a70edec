/**
 * Quotas as people manage them: limits set by admins, the usage every member of a team
 * sees against them, and requests for more (a member asks, with how much and why; an
 * admin approves, which sets the limit, or declines with a note; the member sees the
 * answer). The checks themselves are in server/web/quotas.ts.
 */
import { canAskForMore, canSeeUsage, canSetQuotas } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import { QUOTA_LABELS, QUOTA_RESOURCES, QUOTA_UNITS, type QuotaResource } from "../domain/types";
import { quantity } from "./quotas";

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
 * Usage against limits of every team `actor` may see it of (admins: all), in a fixed
 * number of queries whatever the number of teams: each count is grouped by team and owner.
 */
export async function usageOverview(actor: SessionUser): Promise<TeamUsage[]> {
  const teams = await db.team.findMany({
    where: actor.admin ? {} : { id: { in: [...actor.teams.keys()] } },
    orderBy: { nameKey: "asc" },
    select: { id: true, name: true },
  });
  const visible = teams.filter((t) => canSeeUsage(actor, t.id));
  const ids = visible.map((t) => t.id);
  const inTeams = { teamId: { in: ids } };
  const [limits, guests, running, disks, isos, tasks, holds] = await Promise.all([
    db.quota.findMany({ where: inTeams }),
    db.guest.groupBy({ by: ["teamId", "ownerId"], where: inTeams, _count: { _all: true } }),
    db.guest.groupBy({ by: ["teamId", "ownerId"], where: { ...inTeams, poweredAt: { not: null } }, _sum: { vcpus: true, memoryMiB: true } }),
    db.disk.groupBy({ by: ["teamId", "ownerId"], where: inTeams, _sum: { sizeBytes: true, snapshotCount: true } }),
    db.isoImage.groupBy({ by: ["teamId", "uploaderId"], where: inTeams, _sum: { sizeBytes: true } }),
    db.task.groupBy({ by: ["teamId", "userId"], where: { ...inTeams, state: "running" }, _count: { _all: true } }),
    db.quotaHold.findMany({ where: { ...inTeams, expiresAt: { gt: new Date() } } }),
  ]);
  // used.get(team)?.get(user or "") → amounts
  const used = new Map<string, Map<string, Record<QuotaResource, number>>>();
  const add = (teamId: string | null, userId: string | null, resource: QuotaResource, n: number) => {
    if (!teamId || !n) return;
    const byUser = used.get(teamId) ?? used.set(teamId, new Map()).get(teamId)!;
    // The team's total (""), and the member's own.
    for (const who of new Set(["", userId ?? ""])) {
      const row = byUser.get(who) ?? byUser.set(who, Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, 0])) as Record<QuotaResource, number>).get(who)!;
      row[resource] += n;
    }
  };
  for (const g of guests) add(g.teamId, g.ownerId, "guests", g._count._all);
  for (const g of running) {
    add(g.teamId, g.ownerId, "vcpus", g._sum.vcpus ?? 0);
    add(g.teamId, g.ownerId, "memoryMiB", g._sum.memoryMiB ?? 0);
  }
  for (const d of disks) {
    add(d.teamId, d.ownerId, "diskBytes", Number(d._sum.sizeBytes ?? 0n));
    add(d.teamId, d.ownerId, "snapshots", d._sum.snapshotCount ?? 0);
  }
  for (const i of isos) add(i.teamId, i.uploaderId, "isoBytes", Number(i._sum.sizeBytes ?? 0n));
  for (const t of tasks) add(t.teamId, t.userId, "tasks", t._count._all);
  for (const h of holds) {
    for (const r of QUOTA_RESOURCES) add(h.teamId, h.userId, r, Number(h[r]));
  }
  const memberIds = [...new Set(limits.filter((l) => l.userId).map((l) => l.userId))];
  const names = new Map((await db.user.findMany({ where: { id: { in: memberIds } }, select: { id: true, username: true } })).map((u) => [u.id, u.username]));
  return visible.map((team) => {
    const teamLimits = limits.filter((l) => l.teamId === team.id);
    const usage = (who: string) => used.get(team.id)?.get(who);
    const limitOf = (who: string, r: QuotaResource) => {
      const row = teamLimits.find((l) => l.userId === who && l.resource === r);
      return row ? Number(row.limit) : null;
    };
    // Members with limits of their own, and the viewer themself (everyone sees what they use).
    const shown = new Set(teamLimits.filter((l) => l.userId).map((l) => l.userId));
    if (actor.teams.has(team.id)) shown.add(actor.id);
    const members = [...shown].map((userId) => ({
      userId,
      username: userId === actor.id ? actor.username : (names.get(userId) ?? "a former user"),
      resources: QUOTA_RESOURCES.filter((r) => userId === actor.id || limitOf(userId, r) !== null).map((r) => ({ resource: r, used: usage(userId)?.[r] ?? 0, limit: limitOf(userId, r) })),
    }));
    return { ...team, resources: QUOTA_RESOURCES.map((r) => ({ resource: r, used: usage("")?.[r] ?? 0, limit: limitOf("", r) })), members };
  });
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
