/**
 * One web process's side of the leases test's race: waits until `startAt` (ms since the
 * epoch), asks for the lease through its own connection, prints whether it got it and when
 * it asked.
 *   tsx tests/helpers/lease-race.ts <database url> <lease> <holder> <startAt>
 */
import { holdLease } from "../../server/db/leases";
import { createPrisma } from "../../server/db/prisma";

const [url, name, holder, startAt] = process.argv.slice(2);
const db = createPrisma(url);
await db.lease.count(); // connected before the start
while (Date.now() < Number(startAt) - 20) await new Promise((r) => setTimeout(r, 5));
while (Date.now() < Number(startAt)); // the last few milliseconds spun, for a sharp start
const askedAt = Date.now();
const got = await holdLease(db, name!, holder!, 30_000);
process.stdout.write(`${JSON.stringify({ holder, got, askedAt })}\n`);
await db.$disconnect();
