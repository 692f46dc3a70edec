/**
 * Leases: work that one web process at a time must do, however many run against the
 * database (collecting a host's metrics: two writers would each write their own newest
 * chunk over the other's). A lease is a row naming its holder until it expires; the holder
 * renews it while it works, and another process takes it once it has expired, so a web
 * that dies hands its work on within one lease.
 *
 * Both steps are single statements, atomic in SQLite and in PostgreSQL: the update's
 * condition (the holder's own, or expired) is checked again against the row it locks, so
 * of two processes that find the same expired lease only one gets it; the insert of a
 * lease no one held yet meets the primary key. Expiry is written with the holder's clock:
 * the processes' clocks must agree far better than a lease lasts (NTP; leases last 30 s).
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import type { PrismaClient } from "./client";
import { isUniqueViolationOn } from "./errors";

/** This process as a holder: its host, pid and a random part (a pid comes back after a restart). */
export const PROCESS_HOLDER = `${os.hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;

/** Takes or renews the lease `name` for `ms` from `now`: whether `holder` has it. */
export async function holdLease(database: PrismaClient, name: string, holder: string, ms: number, now = Date.now()): Promise<boolean> {
  const expiresAt = new Date(now + ms);
  const { count } = await database.lease.updateMany({ where: { name, OR: [{ holder }, { expiresAt: { lt: new Date(now) } }] }, data: { holder, expiresAt } });
  if (count === 1) return true;
  try {
    await database.lease.create({ data: { name, holder, expiresAt } });
    return true;
  } catch (err) {
    if (isUniqueViolationOn(err, "name")) return false;
    throw err;
  }
}

/** Gives the lease up, if `holder` has it: another process may take it at once. */
export async function releaseLease(database: PrismaClient, name: string, holder: string): Promise<void> {
  await database.lease.deleteMany({ where: { name, holder } });
}
