/**
 * The metrics history (server/web/metrics/store.ts) on a real migrated SQLite database
 * through Prisma: ticks taken once also when fetched again (and after a restart), several
 * samples of one 10 s bucket aggregated, minutes and hours rolled up when they close, also
 * by a store that starts afresh or finds its coarse tiers missing, reads of every range
 * with the running minute or hour computed from the 10 s tier, nulls kept as null, the
 * recent statistics of many guests in one go, and pruning by age and by deleted subject.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GUEST_FIELDS, HOST_FIELDS, type GuestSample, type HostSample, type MetricsTick } from "../../server/domain/metrics";
import { decodeChunk, GUEST_QUANTA, snap } from "../../server/web/metrics/codec";
import { createTestDb, seedBasics, useAsProcessDatabase, type TestDb } from "../helpers/db";

/** A Monday, 00:00 UTC: every tier's buckets and the 10 s and 1 min chunks start on it. */
const T0 = Date.UTC(2027, 0, 4) / 1000;

const guestSample = (values: Partial<GuestSample>): GuestSample => ({ ...(Object.fromEntries(GUEST_FIELDS.map((f) => [f, null])) as GuestSample), ...values });
const hostSample = (values: Partial<HostSample> = {}): HostSample => ({ ...(Object.fromEntries(HOST_FIELDS.map((f) => [f, null])) as HostSample), cpu: 10, guests: 3, ...values });
let seq = 0;
const tick = (atSeconds: number, guests: Record<string, Partial<GuestSample>>): MetricsTick => ({
  seq: ++seq,
  at: Math.round(atSeconds * 1000),
  host: hostSample(),
  guests: Object.fromEntries(Object.entries(guests).map(([id, v]) => [id, guestSample(v)])),
});

describe("metrics store", () => {
  let database: TestDb;
  let store: typeof import("../../server/web/metrics/store");
  let hostId: string;
  /** Guests in the database: g1 (refetches), g2 (one bucket, many samples), g3 (two hours, rollups). */
  const g: Record<"g1" | "g2" | "g3" | "gone", string> = { g1: "", g2: "", g3: "", gone: "" };

  /** The stored buckets of one subject and tier, oldest first, with one field's min/avg/max. */
  async function stored(subject: string, resolution: number, field = "cpu", kind = "guest") {
    const rows = await database.db.metricChunk.findMany({ where: { kind, subject, resolution }, orderBy: { start: "asc" } });
    const f = (kind === "guest" ? (GUEST_FIELDS as readonly string[]) : HOST_FIELDS).indexOf(field);
    return rows.flatMap((row) => {
      const c = decodeChunk(row.data);
      assert.equal(Number(row.end), c.t[c.size - 1]! + resolution, "a row's end is its newest bucket's end");
      const v = (a: Float64Array) => (Number.isNaN(a[0]!) ? null : a[0]!);
      return Array.from({ length: c.size }, (_, i) => ({ t: c.t[i]!, n: c.n[i]!, min: v(c.min[f]!.subarray(i)), avg: v(c.avg[f]!.subarray(i)), max: v(c.max[f]!.subarray(i)) }));
    });
  }

  before(async () => {
    database = await createTestDb();
    useAsProcessDatabase(database);
    store = await import("../../server/web/metrics/store");
    const basics = await seedBasics(database.db);
    hostId = basics.host.id;
    g.g1 = basics.guest.id;
    for (const name of ["g2", "g3", "gone"] as const) {
      g[name] = (await database.db.guest.create({ data: { name, vcpus: 1, memoryMiB: 256, ownerId: basics.user.id, teamId: basics.team.id, hostId } })).id;
    }
  });
  after(() => database?.cleanup());

  test("the database adapter hands BLOBs over as bytes (not arrays of numbers), and they come back exactly, also in a transaction", async () => {
    const { PrismaBetterSQLite3 } = await import("@prisma/adapter-better-sqlite3");
    const { passingBlobs } = await import("../../server/db/prisma");
    const adapter = await passingBlobs(new PrismaBetterSQLite3({ url: database.url })).connect();
    try {
      await adapter.executeRaw({ sql: `INSERT INTO "MetricChunk" ("kind", "subject", "resolution", "start", "end", "data") VALUES ('guest', 'blob-raw', 10, 0, 10, x'00ff10')`, args: [], argTypes: [] });
      const direct = await adapter.queryRaw({ sql: `SELECT "data", "resolution" FROM "MetricChunk" WHERE "subject" = 'blob-raw'`, args: [], argTypes: [] });
      const cell = direct.rows[0]![0];
      assert.ok(cell instanceof Uint8Array && !Buffer.isBuffer(cell), "a plain Uint8Array (the adapter's own mapRow would make an array of numbers of a Buffer)");
      assert.deepEqual([...cell], [0, 255, 16]);
      const tx = await adapter.startTransaction();
      const inside = await tx.queryRaw({ sql: `SELECT "data" FROM "MetricChunk" WHERE "subject" = 'blob-raw'`, args: [], argTypes: [] });
      // (The adapter's commit() only releases its lock: Prisma sends the SQL itself.)
      await tx.executeRaw({ sql: "ROLLBACK", args: [], argTypes: [] });
      await tx.rollback();
      await adapter.executeRaw({ sql: `DELETE FROM "MetricChunk" WHERE "subject" = 'blob-raw'`, args: [], argTypes: [] });
      const again = inside.rows[0]![0];
      assert.ok(again instanceof Uint8Array && !Buffer.isBuffer(again));
      assert.equal(String(direct.rows[0]![1]), "10", "other columns as the adapter makes them");
    } finally {
      await adapter.dispose();
    }
    const every = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) % 256);
    const key = (start: number) => ({ kind: "guest", subject: "blob-check", resolution: 10, start: BigInt(start) });
    await database.db.metricChunk.create({ data: { ...key(0), end: 10n, data: every } });
    await database.db.metricChunk.create({ data: { ...key(3600), end: 3610n, data: new Uint8Array(0) } });
    try {
      const rows = await database.db.metricChunk.findMany({ where: { subject: "blob-check" }, orderBy: { start: "asc" } });
      assert.ok(rows[0]!.data instanceof Uint8Array);
      assert.deepEqual([...rows[0]!.data], [...every]);
      assert.equal(rows[1]!.data.length, 0);
      const again = await database.db.$transaction(async (tx) => tx.metricChunk.findUnique({ where: { kind_subject_resolution_start: key(0) } }));
      assert.deepEqual([...again!.data], [...every]);
    } finally {
      await database.db.metricChunk.deleteMany({ where: { subject: "blob-check" } });
    }
  });

  test("ticks are taken once: fetching the agent's ring again, also after a restart, changes nothing", async () => {
    const ring = Array.from({ length: 40 }, (_, i) => tick(T0 + 10 * i + 2, { [g.g1]: { cpu: i, rss: 2 ** 30 }, stranger: { cpu: 99 } }));
    const guests = new Set([g.g1]);
    await store.recordTicks(hostId, ring.slice(0, 30), guests);
    await store.recordTicks(hostId, ring, guests); // the first 30 again, then 10 new
    const series = await store.readSeries("guest", g.g1, "hour", (T0 + 400) * 1000);
    assert.equal(series.resolution, 10);
    assert.deepEqual(series.t, ring.map((_, i) => T0 + 10 * i));
    assert.deepEqual(series.fields.cpu.avg, ring.map((_, i) => i));
    assert.deepEqual(series.fields.cpu.max, series.fields.cpu.avg, "one sample a bucket: min = avg = max");
    assert.ok(series.fields.memTotal.avg.every((v) => v === null), "a field without a value is null, not 0");
    assert.ok((await stored(g.g1, 10)).every((b) => b.n === 1), "no sample counted twice");
    assert.equal(await database.db.metricChunk.count({ where: { subject: "stranger" } }), 0, "a guest not in the database is ignored");

    const before = await database.db.metricChunk.findMany({ where: { subject: g.g1 }, orderBy: [{ resolution: "asc" }, { start: "asc" }] });
    const restarted = new store.MetricStore(database.db);
    await restarted.recordTicks(hostId, ring, guests);
    const afterRestart = await database.db.metricChunk.findMany({ where: { subject: g.g1 }, orderBy: [{ resolution: "asc" }, { start: "asc" }] });
    assert.deepEqual(afterRestart, before, "a restarted web fetching the whole ring again writes nothing new");
  });

  test("reads keep closed chunks' bytes, and never show one the writer has changed since", async () => {
    const now = (T0 + 3700) * 1000; // the hour from T0 has ended: its 10 s chunk is closed
    const before = await store.readSeries("guest", g.g1, "hour", now);
    assert.equal(before.fields.cpu.max.at(-1), 39);
    // A second sample in the newest bucket changes the chunk but not its end.
    await store.recordTicks(hostId, [tick(T0 + 398, { [g.g1]: { cpu: 100, rss: 2 ** 30 } })], new Set([g.g1]));
    const after = await store.readSeries("guest", g.g1, "hour", now);
    assert.deepEqual([after.fields.cpu.min.at(-1), after.fields.cpu.avg.at(-1), after.fields.cpu.max.at(-1)], [39, snap(69.5, GUEST_QUANTA.cpu), 100], "(69.5 kept to 1 part in 256: 69.6)");
    assert.deepEqual(after.t, before.t);
  });

  test("several samples in one 10 s bucket make its min, average and max, across calls and a restart", async () => {
    const t = T0 + 1000;
    const guests = new Set([g.g2]);
    const first = new store.MetricStore(database.db);
    await first.recordTicks(hostId, [tick(t + 1, { [g.g2]: { cpu: 10, netRx: null } })], guests);
    await first.recordTicks(hostId, [tick(t + 4, { [g.g2]: { cpu: 40, netRx: 1000 } })], guests);
    await new store.MetricStore(database.db).recordTicks(hostId, [tick(t + 4, { [g.g2]: { cpu: 40 } }), tick(t + 8.5, { [g.g2]: { cpu: 20, netRx: 3200 } })], guests);
    assert.deepEqual(await stored(g.g2, 10), [{ t, n: 3, min: 10, avg: 23.3, max: 40 }]);
    const [bucket] = await stored(g.g2, 10, "netRx");
    assert.deepEqual([bucket!.min, bucket!.max], [1000, 3200], "a field null in some samples has the others' min and max");
  });

  describe("rollups", () => {
    const H = T0 + 7200;
    /**
     * Two hours of 10 s ticks. In minute m of hour h the CPU goes b, b+1, … b+5 with
     * b = 10h + m % 10 (below 25.6 %, where CPU is kept to 0.1 exactly); netRx only in the second hour.
     */
    const cpuAt = (i: number) => 10 * Math.floor(i / 360) + (Math.floor(i / 6) % 10) + (i % 6);
    let ticks: MetricsTick[];
    before(() => {
      ticks = Array.from({ length: 720 }, (_, i) => tick(H + 10 * i + 3, { [g.g3]: { cpu: cpuAt(i), rss: 2 ** 30, netRx: i >= 360 ? 500 : null } }));
    });
    const guests = () => new Set([g.g3]);
    const minute = (m: number) => {
      const b = 10 * Math.floor(m / 60) + (m % 10);
      return { t: H + 60 * m, n: 6, min: b, avg: b + 2.5, max: b + 5 };
    };

    test("minutes and hours are rolled up as they close, in calls of any size and across a restart", async () => {
      let s = new store.MetricStore(database.db);
      for (let i = 0; i < 200; i++) await s.recordTicks(hostId, [ticks[i]!], guests());
      assert.deepEqual(await stored(g.g3, 60), Array.from({ length: 33 }, (_, m) => minute(m)), "every closed minute, not the running one");
      s = new store.MetricStore(database.db); // a restart in the middle of minute 33
      await s.recordTicks(hostId, ticks.slice(150, 300), guests()); // the agent's ring again, and more
      await s.recordTicks(hostId, ticks.slice(300, 700), guests()); // across the hour in one call
      await s.recordTicks(hostId, ticks.slice(700), guests());
      await s.recordTicks(hostId, [tick(H + 7200 + 5, { [g.g3]: { cpu: 7, rss: 2 ** 30, netRx: 800 } })], guests());
      assert.deepEqual(await stored(g.g3, 60), Array.from({ length: 120 }, (_, m) => minute(m)));
      assert.deepEqual(await stored(g.g3, 3600), [
        { t: H, n: 360, min: 0, avg: 7, max: 14 },
        { t: H + 3600, n: 360, min: 10, avg: 17, max: 24 },
      ]);
      const net = await stored(g.g3, 3600, "netRx");
      assert.deepEqual([net[0]!.avg, net[1]!.avg], [null, 500], "an hour without a value is null in the coarse tier too");
    });

    test("a store that finds the coarse tiers behind the 10 s tier rolls the rest up from the database", async () => {
      const minutes = await stored(g.g3, 60);
      const hours = await stored(g.g3, 3600);
      // As if the web had stopped after writing the 10 s tier and before rolling anything up.
      assert.equal((await database.db.metricChunk.deleteMany({ where: { subject: g.g3, resolution: { in: [60, 3600] } } })).count, 2);
      await new store.MetricStore(database.db).recordTicks(hostId, [tick(H + 7200 + 15, { [g.g3]: { cpu: 7 } })], guests());
      assert.deepEqual(await stored(g.g3, 60), minutes);
      assert.deepEqual(await stored(g.g3, 3600), hours);
    });

    test("each range reads its tier, with the running minute or hour computed from the 10 s buckets", async () => {
      const now = (H + 7200 + 20) * 1000;
      const hour = await store.readSeries("guest", g.g3, "hour", now);
      assert.equal(hour.resolution, 10);
      assert.deepEqual([hour.from, hour.to], [H + 3620, H + 7220]);
      assert.equal(hour.t[0], H + 3620, "the first bucket overlapping the range");
      assert.deepEqual(hour.t.slice(-2), [H + 7200, H + 7210]);

      for (const range of ["day", "week"] as const) {
        const day = await store.readSeries("guest", g.g3, range, now);
        assert.equal(day.resolution, 60);
        assert.equal(day.t.length, 121, `${range}: 120 stored minutes and the running one`);
        assert.deepEqual(day.t.at(-1), H + 7200);
        assert.deepEqual([day.fields.cpu.min.at(-1), day.fields.cpu.avg.at(-1), day.fields.cpu.max.at(-1)], [7, 7, 7]);
        assert.deepEqual([day.fields.cpu.min[5], day.fields.cpu.avg[5], day.fields.cpu.max[5]], [5, 7.5, 10]);
      }
      for (const range of ["month", "year"] as const) {
        const year = await store.readSeries("guest", g.g3, range, now);
        assert.equal(year.resolution, 3600);
        assert.deepEqual(year.t, [H, H + 3600, H + 7200], `${range}: two stored hours and the running one`);
        assert.deepEqual(year.fields.cpu.avg, [7, 17, 7]);
        assert.deepEqual(year.fields.netRx.avg, [null, 500, 800]);
        assert.deepEqual(year.fields.memTotal.max, [null, null, null]);
      }
      const host = await store.readSeries("host", hostId, "day", now);
      assert.ok(host.t.length > 0 && host.fields.guests.avg.every((v) => v === 3), "the host's own history");
      await assert.rejects(store.readSeries("guest", g.g3, "decade" as "day", now), (err: Error & { code?: string }) => err.code === "invalid-input");
    });

    test("recent statistics of many guests in one go; beyond an hour from minutes, beyond six hours from hours", async () => {
      const now = (H + 7190) * 1000;
      const tenMinutes = await store.recentStats("guest", [g.g1, g.g3, "nobody"], 600, now);
      assert.deepEqual([...tenMinutes.keys()], [g.g3], "only subjects with samples in the window");
      // The 10 s buckets that overlap [now − 600 s, now]: i = 659 … 719.
      const values = Array.from({ length: 61 }, (_, j) => cpuAt(659 + j));
      assert.deepEqual(
        { ...tenMinutes.get(g.g3)!.cpu },
        { min: 10, avg: values.reduce((a, b) => a + b) / 61, max: 24, last: cpuAt(719), buckets: 61, since: H + 6590 },
      );
      assert.equal(tenMinutes.get(g.g3)!.memTotal.avg, null);
      const twoHours = (await store.recentStats("guest", [g.g3], 7200, now)).get(g.g3)!.cpu;
      assert.deepEqual([twoHours.min, twoHours.avg, twoHours.max, twoHours.buckets], [0, 12, 24, 120], "minutes: 120 buckets");
      const halfDay = (await store.recentStats("guest", [g.g3], 12 * 3600, now)).get(g.g3)!.cpu;
      assert.deepEqual([halfDay.min, halfDay.avg, halfDay.max, halfDay.buckets, halfDay.last], [0, 12, 24, 2, 17], "hours: the two stored");
      await assert.rejects(store.recentStats("guest", [g.g3], 2 * 86_400, now), (err: Error & { code?: string }) => err.code === "invalid-input");
    });
  });

  test("pruning removes what is past its tier's retention, and the history of guests and hosts that are gone", async () => {
    const count = (where: object = {}) => database.db.metricChunk.count({ where });
    // Two ticks a minute apart: the first minute is rolled up, so the guest has minutes to lose too.
    await new store.MetricStore(database.db).recordTicks(hostId, [tick(T0 + 9 * 3600, { [g.gone]: { cpu: 1 } }), tick(T0 + 9 * 3600 + 60, { [g.gone]: { cpu: 2 } })], new Set([g.gone]));
    const total = await count();
    const rawBefore = await count({ resolution: 10 });
    assert.equal(await store.pruneMetrics((T0 + 9 * 3600) * 1000), 0, "nothing is old yet and every subject exists");

    // Two days on: the 10 s tier (a day) has gone, the minutes and hours stay.
    const removed = await store.pruneMetrics((T0 + 2 * 86_400 + 9 * 3600) * 1000, { guests: new Set(Object.values(g)), hosts: new Set([hostId]) });
    assert.equal(removed, rawBefore);
    assert.equal(await count({ resolution: 10 }), 0);
    assert.equal(await count(), total - rawBefore);

    // A guest deleted: its history goes with the next prune (read from the database when not given).
    await database.db.guest.delete({ where: { id: g.gone } });
    const its = await count({ subject: g.gone });
    assert.ok(its > 0);
    assert.equal(await store.pruneMetrics((T0 + 2 * 86_400 + 9 * 3600) * 1000), its);
    assert.equal(await count({ subject: g.gone }), 0);
    assert.ok((await count({ subject: g.g3 })) > 0);
    // And a host no longer listed.
    const hosts = await count({ kind: "host" });
    assert.equal(await store.pruneMetrics((T0 + 2 * 86_400) * 1000, { guests: new Set(Object.values(g)), hosts: new Set() }), hosts);
    // A year and a month on, nothing is left.
    const left = await count();
    assert.equal(await store.pruneMetrics((T0 + 400 * 86_400) * 1000, { guests: new Set(Object.values(g)), hosts: new Set([hostId]) }), left);
    assert.equal(await count(), 0);
  });

  test("a host with 1,200 guests: every batched query stays within the database's parameter limit", async () => {
    const many = Array.from({ length: 1200 }, (_, i) => `many-${i}`);
    const at = T0 + 5 * 86_400;
    const ticks = [0, 30, 65].map((dt) => tick(at + dt, Object.fromEntries(many.map((id, i) => [id, { cpu: i % 100 }]))));
    await new store.MetricStore(database.db).recordTicks(hostId, ticks, new Set(many));
    await new store.MetricStore(database.db).recordTicks(hostId, [tick(at + 125, { [many[0]!]: { cpu: 1 } })], new Set(many));
    assert.equal(await database.db.metricChunk.count({ where: { subject: { startsWith: "many-" }, resolution: 60 } }), 1200, "each guest's first minute rolled up");
    const stats = await store.recentStats("guest", many, 600, (at + 125) * 1000);
    assert.equal(stats.size, 1200);
    assert.equal(stats.get("many-42")!.cpu.max, 42);
    const series = await store.readSeries("guest", "many-7", "day", (at + 125) * 1000);
    assert.deepEqual(series.fields.cpu.avg, [7, 7]);
    const removed = await store.pruneMetrics((at + 125) * 1000, { guests: new Set(Object.values(g)), hosts: new Set([hostId]) });
    assert.ok(removed >= 2400, `${removed} chunks removed`);
    assert.equal(await database.db.metricChunk.count({ where: { subject: { startsWith: "many-" } } }), 0);
  });
});
