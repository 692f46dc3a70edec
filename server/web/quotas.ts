/**
 * Quotas: how much a team, and optionally one member within it, may use: guests, vCPUs
 * and memory of running guests, disk space (virtual sizes), snapshots, ISO space and
 * tasks at once. No limit row: no limit.
 *
 * A change is checked in the same transaction that makes it visible to the next check,
 * and the two cannot interleave: each checked transaction first writes its team's row
 * (Team.quotaSerial + 1). Under PostgreSQL the writer holds that row's lock until it
 * commits, so a second change of the team waits there and then counts (READ COMMITTED
 * reads afresh for every statement) what the first one made; SQLite has one writer at a
 * time anyway. Nothing here is SQLite's own SQL.
 *
 * What is counted is rows: guests, disks' sizes and snapshot counts, ISOs, running task
 * rows, guests marked running (Guest.poweredAt). A change whose rows only exist once slow
 * work is done (a new guest's disks being made, an upload arriving) takes a QuotaHold
 * first: counted as used until it is released or expires.
 */
import { db } from "../db/client";
import { Prisma } from "../db/generated/client";
import { GuesthouseError, QuotaError } from "../domain/errors";
import { formatBytes } from "../domain/format";
import { agentFor } from "./guests";
import { QUOTA_LABELS, QUOTA_RESOURCES, QUOTA_UNITS, type QuotaRefusal, type QuotaResource } from "../domain/types";

export type Tx = Parameters<Parameters<typeof db.$transaction>[0]>[0];
export type Amounts = Partial<Record<QuotaResource, number>>;
/** Whose use a change adds to: the team, and the member who owns what it makes or runs. */
export interface QuotaScope {
  teamId: string;
  userId: string;
}

/** Locks the team's quota row for the rest of the transaction (see above). */
async function lockTeam(tx: Tx, teamId: string): Promise<void> {
  const { count } = await tx.team.updateMany({ where: { id: teamId }, data: { quotaSerial: { increment: 1 } } });
  if (count === 0) throw new GuesthouseError("not-found", "This team does not exist any more.");
}

/**
 * Runs `change` inside the transaction that checks it: the team's row locked, then each
 * limit on a resource the change adds to (the team's and the member's) compared with what
 * is used already plus `amounts`. Refused with a QuotaError naming the quota, its use and
 * its limit. `release`: a hold of this change, dropped first (its amounts are in `amounts`).
 * `memberOnly`: check the member's limits alone (the team's use stays as it is).
 */
export async function withinQuota<T>(
  scope: QuotaScope,
  amounts: Amounts,
  change: (tx: Tx) => Promise<T>,
  options: { release?: string | null; memberOnly?: boolean } = {},
): Promise<T> {
  const adding = QUOTA_RESOURCES.filter((r) => (amounts[r] ?? 0) > 0);
  return db.$transaction(async (tx) => {
    await lockTeam(tx, scope.teamId);
    if (options.release) await tx.quotaHold.deleteMany({ where: { id: options.release } });
    if (adding.length) {
      // The limits and what the team and the member use: one statement.
      const { team, user, limits } = await usagesIn(tx, scope.teamId, scope.userId, adding);
      // The member's own limits first: "your limit" is the more useful refusal when both are reached.
      // `memberOnly`: the team's use does not change (a hand-over inside the team), only the member's.
      for (const forUser of options.memberOnly ? [true] : [true, false]) {
        for (const resource of adding) {
          const limit = (forUser ? limits.user : limits.team)[resource];
          if (limit === null) continue;
          const used = (forUser ? user : team)[resource];
          const asked = amounts[resource] ?? 0;
          if (used + asked > limit) {
            const refusal: QuotaRefusal = { teamId: scope.teamId, resource, scope: forUser ? "user" : "team", used, limit, asked };
            throw new QuotaError(refusalText(refusal), refusal);
          }
        }
      }
    }
    return change(tx);
  });
}

/** "The team's quota of vCPUs of running guests is 8: 6 are in use and this needs 4." */
export function refusalText(r: QuotaRefusal): string {
  const whose = r.scope === "user" ? "Your own quota" : "Your team's quota";
  return (
    `${whose} of ${QUOTA_LABELS[r.resource]} is ${quantity(r.resource, r.limit)}: ${quantity(r.resource, r.used)} ${r.used === 1 && QUOTA_UNITS[r.resource] === "count" ? "is" : "are"} in use and this needs ${quantity(r.resource, r.asked)} more. ` +
    "Free some up, or ask an admin for more on the Quotas page."
  );
}

/** An amount as people read it: a count, or a size. */
export function quantity(resource: QuotaResource, amount: number): string {
  switch (QUOTA_UNITS[resource]) {
    case "bytes":
      return formatBytes(amount);
    case "mib":
      return formatBytes(amount * 2 ** 20);
    default:
      return String(amount);
  }
}

/** Holds `amounts` for a change whose rows come later; released by releaseHold (or by `withinQuota`'s `release`), else it expires. */
export async function holdQuota(scope: QuotaScope, amounts: Amounts, ttlMs: number): Promise<string | null> {
  if (!Object.values(amounts).some((n) => (n ?? 0) > 0)) return null;
  return withinQuota(scope, amounts, (tx) => holdIn(tx, scope, amounts, ttlMs));
}

/** Writes a hold within a transaction that checked its amounts (withinQuota's `change`). */
export async function holdIn(tx: Tx, scope: QuotaScope, amounts: Amounts, ttlMs: number): Promise<string> {
  const hold = await tx.quotaHold.create({
    select: { id: true },
    data: {
      teamId: scope.teamId,
      userId: scope.userId,
      guests: amounts.guests ?? 0,
      vcpus: amounts.vcpus ?? 0,
      memoryMiB: amounts.memoryMiB ?? 0,
      diskBytes: BigInt(amounts.diskBytes ?? 0),
      snapshots: amounts.snapshots ?? 0,
      isoBytes: BigInt(amounts.isoBytes ?? 0),
      tasks: amounts.tasks ?? 0,
      expiresAt: new Date(Date.now() + ttlMs),
    },
  });
  return hold.id;
}

export async function releaseHold(id: string | null): Promise<void> {
  if (id) await db.quotaHold.deleteMany({ where: { id } });
}

/**
 * Where each resource is counted: its table, what a row adds (an SQL expression over
 * the row's own columns), and the column naming the member it counts for.
 */
const SOURCES: Record<QuotaResource, { table: string; adds: string; member: string; where?: string }> = {
  guests: { table: "Guest", adds: "1", member: "ownerId" },
  vcpus: { table: "Guest", adds: 'CASE WHEN "poweredAt" IS NOT NULL THEN "vcpus" ELSE 0 END', member: "ownerId" },
  memoryMiB: { table: "Guest", adds: 'CASE WHEN "poweredAt" IS NOT NULL THEN "memoryMiB" ELSE 0 END', member: "ownerId" },
  diskBytes: { table: "Disk", adds: '"sizeBytes"', member: "ownerId" },
  snapshots: { table: "Disk", adds: '"snapshotCount"', member: "ownerId" },
  isoBytes: { table: "IsoImage", adds: '"sizeBytes"', member: "uploaderId" },
  tasks: { table: "Task", adds: "1", member: "userId", where: `"state" = 'running'` },
};

/**
 * The one statement of a quota check: for each resource, what the team uses and what the
 * member does (rows and live holds), and the team's and the member's limits. Each table
 * is read once, by its team index. Built from the fixed SOURCES above (no input in its
 * text; the team, the member and the time are parameters); plain SQL that PostgreSQL
 * reads as SQLite does.
 */
function usageStatement(teamId: string, userId: string, now: Date, resources: readonly QuotaResource[]): Prisma.Sql {
  const tables = [...new Set(resources.map((r) => SOURCES[r].table))];
  const sums = (table: string) =>
    Prisma.join(
      resources.filter((r) => SOURCES[r].table === table).flatMap((r) => [
        Prisma.sql`COALESCE(SUM(${Prisma.raw(SOURCES[r].adds)}), 0) AS ${Prisma.raw(`"${r}"`)}`,
        Prisma.sql`COALESCE(SUM(CASE WHEN ${Prisma.raw(`"${SOURCES[r].member}"`)} = ${userId} THEN ${Prisma.raw(SOURCES[r].adds)} ELSE 0 END), 0) AS ${Prisma.raw(`"${r}Mine"`)}`,
      ]),
    );
  const fromRows = tables.map((table, i) => {
    const extra = Object.values(SOURCES).find((s) => s.table === table)?.where;
    return Prisma.sql`(SELECT ${sums(table)} FROM ${Prisma.raw(`"${table}"`)} WHERE "teamId" = ${teamId}${extra ? Prisma.raw(` AND ${extra}`) : Prisma.empty}) ${Prisma.raw(`t${i}`)}`;
  });
  const holds = Prisma.sql`(SELECT ${Prisma.join(
    resources.flatMap((r) => [
      Prisma.sql`COALESCE(SUM(${Prisma.raw(`"${r}"`)}), 0) AS ${Prisma.raw(`"${r}Held"`)}`,
      Prisma.sql`COALESCE(SUM(CASE WHEN "userId" = ${userId} THEN ${Prisma.raw(`"${r}"`)} ELSE 0 END), 0) AS ${Prisma.raw(`"${r}HeldMine"`)}`,
    ]),
  )} FROM "QuotaHold" WHERE "teamId" = ${teamId} AND "expiresAt" > ${now}) h`;
  const limits = Prisma.join(
    resources.flatMap((r) => [
      Prisma.sql`(SELECT "limit" FROM "Quota" WHERE "teamId" = ${teamId} AND "userId" = '' AND "resource" = ${r}) AS ${Prisma.raw(`"${r}Limit"`)}`,
      Prisma.sql`(SELECT "limit" FROM "Quota" WHERE "teamId" = ${teamId} AND "userId" = ${userId} AND "resource" = ${r}) AS ${Prisma.raw(`"${r}LimitMine"`)}`,
    ]),
  );
  return Prisma.sql`SELECT *, ${limits} FROM ${Prisma.join([...fromRows, holds], " CROSS JOIN ")}`;
}

type PerResource<T> = Record<QuotaResource, T>;

/**
 * What the team uses of each of `resources` and what one member of it does (`userId`; ""
 * for none), holds included, with the team's and the member's limits (null: none). The
 * resources left out read as 0 with no limit.
 */
export async function usagesIn(
  tx: Tx | typeof db,
  teamId: string,
  userId: string,
  resources: readonly QuotaResource[] = QUOTA_RESOURCES,
): Promise<{ team: PerResource<number>; user: PerResource<number>; limits: { team: PerResource<number | null>; user: PerResource<number | null> } }> {
  const [row] = resources.length ? await tx.$queryRaw<Array<Record<string, unknown>>>(usageStatement(teamId, userId, new Date(), resources)) : [{}];
  // Counts and sums arrive as bigint (SQLite) or numeric text (PostgreSQL's SUM of a bigint).
  const num = (v: unknown) => Number(v ?? 0);
  const limit = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const out = { team: {}, user: {}, limits: { team: {}, user: {} } } as Awaited<ReturnType<typeof usagesIn>>;
  for (const r of QUOTA_RESOURCES) {
    out.team[r] = num(row![r]) + num(row![`${r}Held`]);
    out.user[r] = num(row![`${r}Mine`]) + num(row![`${r}HeldMine`]);
    out.limits.team[r] = limit(row![`${r}Limit`]);
    out.limits.user[r] = limit(row![`${r}LimitMine`]);
  }
  return out;
}

/** Drops holds that expired (a web that died mid-change leaves its holds; they stop counting when they expire). */
export async function pruneHolds(): Promise<number> {
  const { count } = await db.quotaHold.deleteMany({ where: { expiresAt: { lte: new Date() } } });
  return count;
}

/**
 * A start claims longer than this before the agent reports its guest running (the agent
 * answers a start within its request time-out): a guest marked running earlier than this
 * that the agent reports stopped has stopped, and stops counting.
 */
const START_GRACE_MS = 2 * 60_000;

type PoweredGuest = { id: string; teamId: string; ownerId: string; vcpus: number; memoryMiB: number; poweredAt: Date | null; host: { id: string; endpoint: string } };

/**
 * Brings the team's running marks in step with its host's agent: a guest it runs counts
 * (even one started before quotas were kept), one it has stopped (shut down from inside,
 * crashed) no longer does.
 */
export async function syncRunning(host: { id: string; endpoint: string }, teamId: string): Promise<void> {
  const seenAt = Date.now();
  const states = new Map((await agentFor(host).guests()).map((s) => [s.id, s.state]));
  const marked = await db.guest.findMany({ where: { teamId, hostId: host.id }, select: { id: true, poweredAt: true } });
  for (const g of marked) {
    const on = (states.get(g.id) ?? "stopped") !== "stopped";
    if (on && !g.poweredAt) await db.guest.updateMany({ where: { id: g.id, poweredAt: null }, data: { poweredAt: new Date(seenAt) } });
    if (!on && g.poweredAt && g.poweredAt.getTime() < seenAt - START_GRACE_MS) {
      await db.guest.updateMany({ where: { id: g.id, poweredAt: g.poweredAt }, data: { poweredAt: null } });
    }
  }
}

/**
 * Counts the guest as running for its team's (and owner's) vCPU and memory quotas before
 * it starts: refused with a QuotaError when that would pass a limit. Returns the mark, to
 * take back with `unclaimRunning` should the start fail; null when it counted already.
 */
export async function claimRunning(guest: PoweredGuest): Promise<Date | null> {
  await syncRunning(guest.host, guest.teamId).catch((err) => console.error("quotas: could not ask the agent which guests run:", err));
  const fresh = await db.guest.findUnique({ where: { id: guest.id }, select: { poweredAt: true, vcpus: true, memoryMiB: true } });
  if (!fresh || fresh.poweredAt) return null;
  const mark = new Date();
  const { count } = await withinQuota({ teamId: guest.teamId, userId: guest.ownerId }, { vcpus: fresh.vcpus, memoryMiB: fresh.memoryMiB }, (tx) =>
    tx.guest.updateMany({ where: { id: guest.id, poweredAt: null }, data: { poweredAt: mark } }),
  );
  return count === 1 ? mark : null;
}

/** Takes back a claim (the start failed), or the mark of a guest now stopped (`mark` null: whatever it is). */
export async function unclaimRunning(guestId: string, mark: Date | null = null): Promise<void> {
  await db.guest.updateMany({ where: { id: guestId, ...(mark ? { poweredAt: mark } : {}) }, data: { poweredAt: null } });
}

/** How long a hold counts at most: a change still running after this is checked again when its rows are written. */
export const HOLD_MS = { quick: 15 * 60_000, long: 24 * 60 * 60_000 } as const;

/** Runs `work` with `amounts` held for it (checked first), released however it ends. */
export async function withHold<T>(scope: QuotaScope, amounts: Amounts, ttlMs: number, work: (hold: string | null) => Promise<T>): Promise<T> {
  const hold = await holdQuota(scope, amounts, ttlMs);
  try {
    return await work(hold);
  } finally {
    await releaseHold(hold).catch((err) => console.error("quotas: could not release a hold:", err));
  }
}
