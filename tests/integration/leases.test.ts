/**
 * Leases (server/db/leases.ts) on a real database: of many holders asking at once (in one
 * process, and from four processes with connections of their own) exactly one gets a
 * lease; its holder renews it, no one else takes it before it expires, anyone may after;
 * releasing is the holder's alone. (Two clients of one SQLite file in one process cannot
 * race: better-sqlite3 waits for a lock synchronously, holding the thread the other needs.)
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { holdLease, releaseLease } from "../../server/db/leases";
import { createPrisma, type PrismaClient } from "../../server/db/prisma";
import { createTestDb, type TestDb } from "../helpers/db";

describe("leases on a real database", () => {
  let database: TestDb;
  let second: PrismaClient;

  before(async () => {
    database = await createTestDb();
    second = createPrisma(database.url);
  });
  after(async () => {
    await second?.$disconnect();
    await database?.cleanup();
  });

  test("of twenty asking at once in one process, exactly one gets the lease", async () => {
    const holders = Array.from({ length: 20 }, (_, i) => `web-${i}`);
    const got = await Promise.all(holders.map((h) => holdLease(database.db, "race", h, 30_000)));
    assert.equal(got.filter(Boolean).length, 1, JSON.stringify(got));
    assert.equal((await database.db.lease.findUniqueOrThrow({ where: { name: "race" } })).holder, holders[got.indexOf(true)]);
  });

  test("of four processes asking within 100 ms of one moment through their own connections, exactly one gets the lease", { timeout: 60_000 }, async () => {
    // Each connects first, then all ask at one moment well after the slowest start.
    const startAt = Date.now() + 15_000;
    const asks = ["p1", "p2", "p3", "p4"].map(
      (holder) =>
        new Promise<{ holder: string; got: boolean; askedAt: number }>((resolve, reject) => {
          execFile(process.execPath, ["--import", "tsx", "tests/helpers/lease-race.ts", database.url, "crowd", holder, String(startAt)], { timeout: 45_000 }, (err, stdout, stderr) =>
            err ? reject(new Error(`${holder}: ${err.message} ${stderr}`)) : resolve(JSON.parse(stdout) as { holder: string; got: boolean; askedAt: number }),
          );
        }),
    );
    const answers = await Promise.all(asks);
    // A process that started too late would only ask late: then this was no race.
    const spread = Math.max(...answers.map((a) => a.askedAt)) - Math.min(...answers.map((a) => a.askedAt));
    assert.ok(answers.every((a) => a.askedAt - startAt < 100) && spread < 100, `asked at ${answers.map((a) => a.askedAt - startAt).join(", ")} ms after the start`);
    const winners = answers.filter((a) => a.got);
    assert.equal(winners.length, 1, JSON.stringify(answers));
    assert.equal((await database.db.lease.findUniqueOrThrow({ where: { name: "crowd" } })).holder, winners[0]!.holder);
  });

  test("its holder renews it; no one else takes it before it expires; anyone may after", async () => {
    const t0 = Date.now();
    assert.equal(await holdLease(database.db, "job", "a", 10_000, t0), true);
    assert.equal(await holdLease(second, "job", "b", 10_000, t0 + 5_000), false, "held by a");
    assert.equal(await holdLease(database.db, "job", "a", 10_000, t0 + 9_000), true, "renewed: until t0 + 19 s");
    assert.equal(await holdLease(second, "job", "b", 10_000, t0 + 15_000), false, "the renewal counts");
    assert.equal(await holdLease(second, "job", "b", 10_000, t0 + 19_001), true, "expired: b takes it");
    assert.equal(await holdLease(database.db, "job", "a", 10_000, t0 + 19_002), false, "a lost it");
    assert.equal((await database.db.lease.findUniqueOrThrow({ where: { name: "job" } })).holder, "b");
  });

  test("only its holder releases it; released, another takes it at once", async () => {
    assert.equal(await holdLease(database.db, "handover", "a", 60_000), true);
    await releaseLease(second, "handover", "b");
    assert.equal(await holdLease(second, "handover", "b", 60_000), false, "b's release let nothing go");
    await releaseLease(database.db, "handover", "a");
    assert.equal(await holdLease(second, "handover", "b", 60_000), true);
  });
});
