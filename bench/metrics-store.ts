/**
 * The metrics history at full size (issue 16): a year of 100 guests and their host in a
 * fresh migrated SQLite database, written by the store's own code, then
 *
 *   node --import tsx bench/metrics-store.ts
 *   BENCH_GUESTS=20 BENCH_RUNS=20 node --import tsx bench/metrics-store.ts
 *   BENCH_KEEP=/tmp/metrics.db …   keeps a copy of the filled database (after VACUUM)
 *
 *   1. size: the database file after VACUUM against the target (100 guests, a year, ≤ 200 MiB),
 *      with the most each tier can hold just before a prune: 25 h of 10 s buckets, 31 days and
 *      6 h of minutes, 381 days of hours (retention plus one chunk's span less a bucket);
 *   2. a year of one guest served: `readSeries(…, "year")`, and the same plus JSON.stringify,
 *      median and p99 over BENCH_RUNS (50) guests read once each (cold: the store has cached
 *      nothing), against ≤ 50 ms; then the same guests again (warm: closed chunks' bytes cached).
 *
 * Also printed, as diagnostics: the other ranges, recentStats of every guest over 10 min and
 * a day, and what one tick of 100 guests costs the web (recordTicks), also when a minute and
 * when an hour closes.
 *
 * The data (deterministic, seeded per guest): 60 % of the guests mostly idle (CPU about 1 %
 * with noise, a burst about once an hour), 30 % steady (about 8 % with a daily swing, bursts
 * every 15 min), 10 % busy (35 %, bursts every 5 min); bursts of 60–100 % CPU lasting minutes,
 * with disk and network traffic in log-normal bursts and idle zeros between (a small journal
 * write in 15 % of the intervals, 60–400 B/s of network chatter in 70 %); resident memory
 * drifting in a random walk, growing in bursts; a quarter without a balloon driver (memTotal
 * and memAvailable null), a fifth without a cgroup of their own (pressure null), a tenth on
 * user-mode networking (network fields null). The last 25 h go through recordTicks as 10 s
 * ticks (360 a call, as a web fetching an hour from the agent): the 10 s tier and its rollups
 * are the real path. Older minutes are rolled up by the store's rollUp() from generated 10 s
 * samples (6 a minute), and the hours of that month from the same samples; the hours before
 * it from generated minute samples (60 an hour, so such an hour's min and max come from 60
 * points rather than 360); then encoded with the codec and inserted.
 */
import fs from "node:fs";
import Database from "better-sqlite3";
import { GUEST_FIELDS, HOST_FIELDS, METRIC_TIERS, type GuestSample, type HostSample, type MetricsTick } from "../server/domain/metrics";
import { CHUNK_BUCKETS, emptyChunk, encodeChunk, GUEST_QUANTA, HOST_QUANTA, type Chunk } from "../server/web/metrics/codec";
import { rollUp } from "../server/web/metrics/buckets";
import { MetricStore } from "../server/web/metrics/store";
import { createTestDb, seedBasics } from "../tests/helpers/db";
import { machineLine, median, ms, percentile, verdict } from "./stats";

const GUESTS = Number(process.env.BENCH_GUESTS ?? 100);
const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const SIZE_TARGET = 200 * 2 ** 20;
const READ_TARGET_MS = 50;
const HOST_CORES = 16;
/** A fixed "now" (2027-06-15 12:34:50 UTC), so every run stores the same data. */
const NOW = Date.UTC(2027, 5, 15, 12, 34, 50) / 1000;
const [RAW, MINUTE, HOUR] = METRIC_TIERS;
const span = (r: number) => r * CHUNK_BUCKETS;
const GUEST_Q = GUEST_FIELDS.map((f) => GUEST_QUANTA[f]);
const HOST_Q = HOST_FIELDS.map((f) => HOST_QUANTA[f]);

/** mulberry32: small, fast, seeded. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return { next, gauss, logNormal: (mu: number, sigma: number) => Math.exp(mu + sigma * gauss()) };
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** One synthetic guest: step(t, dt) moves it on by dt seconds and writes its sample (GUEST_FIELDS order; NaN = null). */
function guestModel(index: number) {
  const r = prng(index * 7919 + 1);
  const profile = index % 10 < 6 ? { level: 1, burstEvery: 3600, burstFor: 300 } : index % 10 < 9 ? { level: 8, burstEvery: 900, burstFor: 600 } : { level: 35, burstEvery: 300, burstFor: 900 };
  const vcpus = 1 + (index % 4);
  const memory = 2 ** 30 * (1 + (index % 8));
  const balloon = index % 4 !== 0;
  const cgroup = index % 5 !== 0;
  const tap = index % 10 !== 7;
  let cpu = profile.level;
  let burst = 0;
  let rss = memory * 0.4;
  return {
    vcpus,
    memory,
    step(t: number, dt: number, out: Float64Array): void {
      if (burst > 0) burst -= dt;
      else if (r.next() < dt / profile.burstEvery) burst = -Math.log(1 - r.next()) * profile.burstFor;
      const daily = profile.level > 1 ? 1 + 0.5 * Math.sin((2 * Math.PI * t) / 86_400) : 1;
      const target = burst > 0 ? 60 + 40 * r.next() : profile.level * daily;
      cpu = clamp(cpu + (target - cpu) * Math.min(1, dt / 30) + r.gauss() * Math.max(0.2, 0.15 * target), 0, 100);
      rss = clamp(rss + r.gauss() * memory * 0.0005 * Math.sqrt(dt / 10) + (burst > 0 ? 0.001 : -0.0002) * memory * (dt / 10), memory * 0.25, memory * 0.98);
      const io = burst > 0 && r.next() < 0.7;
      const write = io ? r.logNormal(14, 1.5) : r.next() < 0.15 ? (4096 * (1 + Math.floor(r.next() * 16))) / 10 : 0;
      const read = io ? r.logNormal(13.5, 1.5) : 0;
      const block = 4096 * 2 ** Math.floor(r.next() * 6);
      const ops = (read + write) / block;
      const chatter = r.next() < 0.7;
      const rx = chatter ? 60 + 340 * r.next() : 0;
      const tx = chatter ? 150 * r.next() : 0;
      const netBurst = burst > 0 && r.next() < 0.5 ? r.logNormal(13, 2) : 0;
      const psi = burst > 0 ? 20 * r.next() : r.next() < 0.05 ? 0.5 * r.next() : 0;
      const nil = Number.NaN;
      const values = [
        cpu,
        clamp((cpu * vcpus) / HOST_CORES + 0.3 + r.gauss() * 0.05, 0, 100),
        rss,
        balloon ? memory - 2 ** 26 : nil,
        balloon ? clamp(memory - 2 ** 26 - rss * 0.8 + r.gauss() * 2 ** 20, 0, memory) : nil,
        read,
        write,
        read / block,
        write / block,
        ops * (0.1 + 2 * r.next()),
        tap ? rx + netBurst : nil,
        tap ? tx + netBurst * 0.3 : nil,
        tap ? (rx + netBurst) / (80 + 1320 * r.next()) : nil,
        tap ? (tx + netBurst * 0.3) / (80 + 1320 * r.next()) : nil,
        tap ? (r.next() < 0.002 ? 0.1 + 2 * r.next() : 0) : nil,
        cgroup ? psi : nil,
        cgroup ? psi * 0.2 * r.next() : nil,
        cgroup ? (io ? 10 * r.next() : 0) : nil,
      ];
      out.set(values);
    },
  };
}

function hostModel(vcpus: number, memAllocated: number) {
  const r = prng(42);
  let used = 0.5;
  return {
    step(_t: number, dt: number, out: Float64Array): void {
      used = clamp(used + r.gauss() * 0.002 * Math.sqrt(dt / 10), 0.3, 0.9);
      const cpu = clamp(20 + r.gauss() * 5, 0, 100);
      out.set([cpu, used * 2 ** 37, 2 ** 37, (cpu / 100) * HOST_CORES + r.gauss() * 0.3, GUESTS, vcpus, memAllocated]);
    },
  };
}

type Model = { step(t: number, dt: number, out: Float64Array): void };
type Row = { resolution: number; start: number; end: number; data: Uint8Array<ArrayBuffer> };

/**
 * The older history of one subject as the store would have rolled it up: over
 * [minuteFrom, to) 10 s samples rolled into minutes and hours, over [hourFrom, minuteFrom)
 * minute samples (counting six each) rolled into hours; 6 h at a time, by the store's rollUp().
 */
function olderTiers(model: Model, quanta: typeof GUEST_Q, hourFrom: number, minuteFrom: number, to: number): Row[] {
  const fields = quanta.length;
  const sample = new Float64Array(fields);
  const rows: Row[] = [];
  const hours: Chunk[] = [];
  for (let start = Math.floor(hourFrom / span(MINUTE.resolution)) * span(MINUTE.resolution); start < to; start += span(MINUTE.resolution)) {
    const a = Math.max(hourFrom, start);
    const b = Math.min(to, start + span(MINUTE.resolution));
    const dt = a >= minuteFrom ? RAW.resolution : MINUTE.resolution;
    const fine = emptyChunk(dt, fields, Math.ceil((b - a) / dt));
    for (let t = a; t < b; t += dt) {
      model.step(t, dt, sample);
      const i = fine.size++;
      fine.t[i] = t;
      fine.n[i] = dt / RAW.resolution;
      for (let f = 0; f < fields; f++) fine.avg[f]![i] = sample[f]!;
    }
    hours.push(rollUp([fine], HOUR.resolution, a, b, quanta));
    if (a >= minuteFrom) {
      const minutes = rollUp([fine], MINUTE.resolution, a, b, quanta);
      rows.push({ resolution: MINUTE.resolution, start, end: minutes.t[minutes.size - 1]! + MINUTE.resolution, data: encodeChunk(minutes, quanta) });
    }
  }
  for (let start = Math.floor(hourFrom / span(HOUR.resolution)) * span(HOUR.resolution); start < to; start += span(HOUR.resolution)) {
    const chunk = rollUp(hours, HOUR.resolution, start, start + span(HOUR.resolution), quanta);
    if (chunk.size) rows.push({ resolution: HOUR.resolution, start, end: chunk.t[chunk.size - 1]! + HOUR.resolution, data: encodeChunk(chunk, quanta) });
  }
  return rows;
}

const sampleOf = <F extends string>(fields: readonly F[], values: Float64Array) => Object.fromEntries(fields.map((f, i) => [f, Number.isNaN(values[i]!) ? null : values[i]!])) as Record<F, number | null>;

async function main(): Promise<void> {
  const t = await createTestDb();
  const file = t.url.replace(/^file:/, "");
  try {
    const { user, team, host } = await seedBasics(t.db);
    await t.db.guest.deleteMany({});
    const ids = Array.from({ length: GUESTS }, (_, i) => `bench-guest-${String(i).padStart(4, "0")}`);
    await t.db.guest.createMany({ data: ids.map((id, i) => ({ id, name: id, vcpus: 1 + (i % 4), memoryMiB: 1024 * (1 + (i % 8)), ownerId: user.id, teamId: team.id, hostId: host.id })) });
    const models = ids.map((_, i) => guestModel(i));
    const hostM = hostModel(
      models.reduce((s, m) => s + m.vcpus, 0),
      models.reduce((s, m) => s + m.memory, 0),
    );

    // The most each tier holds just before a prune: its retention, plus a chunk's span less a bucket.
    const rawFrom = Math.floor((NOW - RAW.keepSeconds - span(RAW.resolution) + RAW.resolution) / RAW.resolution) * RAW.resolution;
    const minuteFrom = Math.floor((NOW - MINUTE.keepSeconds - span(MINUTE.resolution) + MINUTE.resolution) / MINUTE.resolution) * MINUTE.resolution;
    const hourFrom = Math.floor((NOW - HOUR.keepSeconds - span(HOUR.resolution) + HOUR.resolution) / HOUR.resolution) * HOUR.resolution;
    // The generated tiers end where the ticks begin (an hour boundary), so the store's rollups carry on from them.
    const ticksFrom = Math.floor(rawFrom / HOUR.resolution) * HOUR.resolution;

    const fillStart = performance.now();
    const subjects = [...ids.map((id, i) => ({ kind: "guest", id, model: models[i]! as Model, quanta: GUEST_Q })), { kind: "host", id: host.id, model: hostM as Model, quanta: HOST_Q }];
    for (const s of subjects) {
      const rows = olderTiers(s.model, s.quanta, hourFrom, minuteFrom, ticksFrom);
      await t.db.metricChunk.createMany({ data: rows.map((r) => ({ kind: s.kind, subject: s.id, resolution: r.resolution, start: BigInt(r.start), end: BigInt(r.end), data: r.data })) });
    }
    const generatedMs = performance.now() - fillStart;

    // The last 25 h through the store, as the collector hands them over.
    const store = new MetricStore(t.db);
    const guestSet = new Set(ids);
    const values = new Float64Array(GUEST_FIELDS.length);
    const hostValues = new Float64Array(HOST_FIELDS.length);
    let seq = 0;
    const makeTick = (at: number): MetricsTick => {
      hostM.step(at, RAW.resolution, hostValues);
      const guests: Record<string, GuestSample> = {};
      ids.forEach((id, i) => {
        models[i]!.step(at, RAW.resolution, values);
        guests[id] = sampleOf(GUEST_FIELDS, values);
      });
      return { seq: ++seq, at: at * 1000 + 137, host: sampleOf(HOST_FIELDS, hostValues) as HostSample, guests };
    };
    const ticksStart = performance.now();
    let batch: MetricsTick[] = [];
    for (let at = ticksFrom; at <= NOW; at += RAW.resolution) {
      batch.push(makeTick(at));
      if (batch.length === 360) {
        await store.recordTicks(host.id, batch, guestSet);
        batch = [];
      }
    }
    if (batch.length) await store.recordTicks(host.id, batch, guestSet);
    const ticksMs = performance.now() - ticksStart;

    const tiers = await t.db.metricChunk.groupBy({ by: ["resolution"], _count: { _all: true }, _min: { start: true }, _max: { end: true } });
    const blobBytes = new Database(file, { readonly: true }).prepare("SELECT resolution, SUM(LENGTH(data)) AS bytes FROM MetricChunk GROUP BY resolution").all() as Array<{ resolution: number; bytes: number }>;
    await t.db.$disconnect();
    const sqlite = new Database(file);
    sqlite.exec("VACUUM");
    sqlite.close();
    const size = fs.statSync(file).size;
    if (process.env.BENCH_KEEP) fs.copyFileSync(file, process.env.BENCH_KEEP);

    // Reads on a fresh store: each of RUNS guests once (cold: nothing cached but SQLite's pages), then again (warm).
    const reader = new MetricStore(t.db);
    const nowMs = NOW * 1000;
    const pick = (k: number) => ids[(k * 37) % ids.length]!;
    for (let k = 0; k < 3; k++) JSON.stringify(await new MetricStore(t.db).readSeries("guest", pick(k + RUNS), "year", nowMs));
    const reads = { cold: { read: [] as number[], served: [] as number[] }, warm: { read: [] as number[], served: [] as number[] } };
    let points = 0;
    let json = 0;
    for (const pass of ["cold", "warm"] as const) {
      for (let k = 0; k < RUNS; k++) {
        const a = performance.now();
        const series = await reader.readSeries("guest", pick(k), "year", nowMs);
        const b = performance.now();
        json = JSON.stringify(series).length;
        const c = performance.now();
        reads[pass].read.push(b - a);
        reads[pass].served.push(c - a);
        points = series.t.length;
      }
    }
    const served = reads.cold.served;
    const ranges: string[] = [];
    for (const range of ["hour", "day", "week", "month"] as const) {
      const times: number[] = [];
      for (let k = 0; k < 10; k++) {
        const a = performance.now();
        JSON.stringify(await reader.readSeries("guest", pick(k), range, nowMs));
        times.push(performance.now() - a);
      }
      ranges.push(`${range} ${ms(median(times))}`);
    }
    const stats: string[] = [];
    for (const window of [600, 86_400]) {
      const times: number[] = [];
      for (let k = 0; k < 5; k++) {
        const a = performance.now();
        await reader.recentStats("guest", ids, window, nowMs);
        times.push(performance.now() - a);
      }
      stats.push(`${window} s ${ms(median(times))}`);
    }

    // One tick of every guest, as the collector makes it every 10 s: plain, a minute closing, an hour closing.
    const plain: number[] = [];
    const minuteClose: number[] = [];
    const hourClose: number[] = [];
    const timeTick = async (at: number, record = true) => {
      const one = makeTick(at);
      const a = performance.now();
      await store.recordTicks(host.id, [one], guestSet);
      if (record) (at % 3600 === 0 ? hourClose : at % 60 === 0 ? minuteClose : plain).push(performance.now() - a);
    };
    let at = Math.floor(NOW / 10) * 10 + 10;
    for (; at < NOW + 600; at += RAW.resolution) await timeTick(at);
    // Then the last ticks before three hours close, and their closing ones (no samples between: as an agent down a while).
    for (let hour = Math.ceil(at / 3600) * 3600; hourClose.length < 3; hour += 3600) for (const dt of [-20, -10, 0]) await timeTick(hour + dt, dt === 0);

    const guestMiB = (b: number) => (b / GUESTS / 2 ** 20).toFixed(2);
    console.log(`# Metrics store (${machineLine()})`);
    console.log(`guests: ${GUESTS} and their host; generated tiers in ${(generatedMs / 1000).toFixed(1)} s, the last 25 h through recordTicks in ${(ticksMs / 1000).toFixed(1)} s`);
    console.log("");
    console.log("| tier | chunks | from | to | compressed bytes | per guest |");
    console.log("| --- | --- | --- | --- | --- | --- |");
    for (const tier of tiers.sort((a, b) => a.resolution - b.resolution)) {
      const bytes = blobBytes.find((b) => b.resolution === tier.resolution)?.bytes ?? 0;
      const iso = (s: bigint | null) => new Date(Number(s) * 1000).toISOString().slice(0, 16);
      console.log(`| ${tier.resolution} s | ${tier._count._all} | ${iso(tier._min.start)} | ${iso(tier._max.end)} | ${(bytes / 2 ** 20).toFixed(1)} MiB | ${guestMiB(bytes)} MiB |`);
    }
    console.log("");
    console.log(`database file after VACUUM: ${(size / 2 ** 20).toFixed(1)} MiB (${guestMiB(size)} MiB a guest)`);
    console.log(`a year of one guest: ${points} points, ${(json / 1024).toFixed(0)} KiB of JSON`);
    for (const pass of ["cold", "warm"] as const) {
      const r = reads[pass];
      console.log(`  ${pass}: readSeries median ${ms(median(r.read))}, p99 ${ms(percentile(r.read, 99))}; with JSON.stringify median ${ms(median(r.served))}, p99 ${ms(percentile(r.served, 99))}`);
    }
    console.log(`other ranges (readSeries + JSON, median of 10): ${ranges.join(", ")}`);
    console.log(`recentStats of ${GUESTS} guests (median of 5): ${stats.join(", ")}`);
    console.log(`one tick of ${GUESTS} guests (recordTicks): median ${ms(median(plain))} (${(median(plain) / GUESTS).toFixed(2)} ms a guest), p99 ${ms(percentile(plain, 99))}; a minute closing ${ms(median(minuteClose))}; an hour closing ${ms(median(hourClose))}`);
    console.log("");
    const scale = 100 / GUESTS;
    console.log(`storage for 100 guests for a year ≤ 200 MiB: ${verdict(size * scale <= SIZE_TARGET)} (${((size * scale) / 2 ** 20).toFixed(1)} MiB${GUESTS === 100 ? "" : ` scaled from ${GUESTS}`}, ${((size * scale) / SIZE_TARGET).toFixed(2)} × the target)`);
    console.log(`a year of one guest served ≤ ${READ_TARGET_MS} ms (cold, p99): ${verdict(percentile(served, 99) <= READ_TARGET_MS)} (p99 ${ms(percentile(served, 99))}, median ${ms(median(served))}; ${(percentile(served, 99) / READ_TARGET_MS).toFixed(2)} × the target; warm p99 ${ms(percentile(reads.warm.served, 99))}, ${(percentile(reads.warm.served, 99) / READ_TARGET_MS).toFixed(2)} ×)`);
  } finally {
    await t.cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

