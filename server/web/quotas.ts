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
 */
export async function withinQuota<T>(scope: QuotaScope, amounts: Amounts, change: (tx: Tx) => Promise<T>, options: { release?: string | null } = {}): Promise<T> {
  const adding = QUOTA_RESOURCES.filter((r) => (amounts[r] ?? 0) > 0);
  return db.$transaction(async (tx) => {
    await lockTeam(tx, scope.teamId);
    if (options.release) await tx.quotaHold.deleteMany({ where: { id: options.release } });
    if (adding.length) {
      const limits = await tx.quota.findMany({ where: { teamId: scope.teamId, userId: { in: ["", scope.userId] }, resource: { in: adding } } });
      // The member's own limits first: "your limit" is the more useful refusal when both are reached.
      limits.sort((a, b) => (b.userId ? 1 : 0) - (a.userId ? 1 : 0));
      for (const row of limits) {
        const resource = row.resource as QuotaResource;
        const forUser = row.userId !== "";
        const used = (await usageIn(tx, scope.teamId, forUser ? scope.userId : null, [resource]))[resource];
        const asked = amounts[resource] ?? 0;
        const limit = Number(row.limit);
        if (used + asked > limit) {
          throw new QuotaError(refusalText({ teamId: scope.teamId, resource, scope: forUser ? "user" : "team", used, limit, asked }), {
            teamId: scope.teamId,
            resource,
            scope: forUser ? "user" : "team",
            used,
            limit,
            asked,
          });
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
    data: { teamId: scope.teamId, userId: scope.userId, amounts: JSON.stringify(amounts), expiresAt: new Date(Date.now() + ttlMs) },
  });
  return hold.id;
}

export async function releaseHold(id: string | null): Promise<void> {
  if (id) await db.quotaHold.deleteMany({ where: { id } });
}

/** What a team (or, with `userId`, one member within it) uses of each resource, holds included. */
export async function usageIn(tx: Tx | typeof db, teamId: string, userId: string | null, resources: readonly QuotaResource[] = QUOTA_RESOURCES): Promise<Record<QuotaResource, number>> {
  const mine = userId ? { ownerId: userId } : {};
  const want = new Set(resources);
  const used = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, 0])) as Record<QuotaResource, number>;
  if (want.has("guests")) used.guests = await tx.guest.count({ where: { teamId, ...mine } });
  if (want.has("vcpus") || want.has("memoryMiB")) {
    const s = await tx.guest.aggregate({ where: { teamId, ...mine, poweredAt: { not: null } }, _sum: { vcpus: true, memoryMiB: true } });
    used.vcpus = s._sum.vcpus ?? 0;
    used.memoryMiB = s._sum.memoryMiB ?? 0;
  }
  if (want.has("diskBytes") || want.has("snapshots")) {
    const s = await tx.disk.aggregate({ where: { teamId, ...mine }, _sum: { sizeBytes: true, snapshotCount: true } });
    used.diskBytes = Number(s._sum.sizeBytes ?? 0n);
    used.snapshots = s._sum.snapshotCount ?? 0;
  }
  if (want.has("isoBytes")) {
    const s = await tx.isoImage.aggregate({ where: { teamId, ...(userId ? { uploaderId: userId } : {}) }, _sum: { sizeBytes: true } });
    used.isoBytes = Number(s._sum.sizeBytes ?? 0n);
  }
  if (want.has("tasks")) used.tasks = await tx.task.count({ where: { teamId, state: "running", ...(userId ? { userId } : {}) } });
  // Statements one after another: a transaction's queries must not overlap.
  const holds = await tx.quotaHold.findMany({ where: { teamId, expiresAt: { gt: new Date() }, ...(userId ? { userId } : {}) }, select: { amounts: true } });
  for (const hold of holds) {
    const amounts = JSON.parse(hold.amounts) as Amounts;
    for (const r of resources) used[r] += amounts[r] ?? 0;
  }
  return used;
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
