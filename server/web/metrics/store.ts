/**
 * The metrics history in the database (issue 16): every guest's and host's samples kept
 * downsampled in three tiers (METRIC_TIERS: 10 s for a day, 1 min for a month, 1 h for a
 * year), each bucket the min, average and max of its samples, as MetricChunk rows of 360
 * buckets each (codec.ts): 1 h of 10 s, 6 h of 1 min, 15 days of 1 h, aligned to multiples
 * of their span since the epoch. 100 guests for a year take 170 MiB (bench/metrics-store.ts).
 *
 * Writing (recordTicks, from the collector): samples go into the newest 10 s chunk of their
 * subject, which is written again whole at each call; when a tick shows that a minute or an
 * hour has ended, its bucket is rolled up from the 10 s buckets into the coarser tier. What
 * has been rolled up is read from the database (the coarse tier's newest `end`), never kept
 * only in memory, so a web that restarts (or a write that failed) rolls up the rest on its
 * next call. A sample is taken once: one read at or before the newest sample of its subject
 * is skipped, since the web fetches the agent's whole last hour again after a restart.
 *
 * The decoded newest 10 s chunk of each subject is cached (about 55 KB a guest) so that a
 * tick costs an encode and one upsert, not a read; the database stays the truth (a failed
 * write drops the cache of what it touched). One process writes a host's history: the
 * collector holding the host's lease (collector.ts), through the process's store
 * (metricStore(), on globalThis). Reads ask the database which chunks they
 * need and keep only the bytes of closed ones (ClosedChunks), checked against each row.
 *
 * Queries are shaped for the primary key (kind, subject, resolution, start): `start` bounded
 * on both sides, several subjects as IN lists rather than ORs (startsBetween, rowsAt).
 *
 * The arithmetic on buckets (a sample absorbed, a tier rolled up, a series or a window's
 * statistics read out) is buckets.ts; the bytes of a chunk, codec.ts.
 *
 * Plain Prisma queries only (no SQL of SQLite's own): the same code is meant for PostgreSQL.
 */
import { db, type PrismaClient } from "../../db/client";
import { GuesthouseError } from "../../domain/errors";
import {
  GUEST_FIELDS,
  HOST_FIELDS,
  METRIC_RANGES,
  METRIC_TIERS,
  type GuestField,
  type GuestSample,
  type HostField,
  type HostSample,
  type MetricRange,
  type MetricSeries,
  type MetricsTick,
} from "../../domain/metrics";
import { absorb, mergeBuckets, rollUp, seriesOf, statsOf, type FieldStats } from "./buckets";
import { CHUNK_BUCKETS, decodeChunk, emptyChunk, encodeChunk, ensureCapacity, GUEST_QUANTA, HOST_QUANTA, withFields, type Chunk } from "./codec";

export type MetricKind = "guest" | "host";

const RAW = METRIC_TIERS[0].resolution;
const COARSE = METRIC_TIERS.slice(1).map((t) => t.resolution);
const RAW_KEEP = METRIC_TIERS[0].keepSeconds;
/**
 * The tier recentStats reads for a window: 10 s buckets up to an hour, minutes up to six
 * hours, then hours (a day of 10 s buckets of 100 guests is 2,400 chunks to decode, of
 * minutes 500, of hours 100 to 200). Coarser buckets keep the samples' own min and max;
 * what changes is the window's start, rounded down to a bucket.
 */
const statsResolution = (window: number) => (window <= 3600 ? METRIC_TIERS[0].resolution : window <= 6 * 3600 ? METRIC_TIERS[1].resolution : METRIC_TIERS[2].resolution);
/** The longest stretch of synchronous work between yields to the event loop (breather). */
const BREATHE_MS = 8;
/** Prisma binds every value as a parameter and refuses more than SQLite's 999 in one statement. */
const MAX_PARAMS = 900;

const spanOf = (resolution: number) => resolution * CHUNK_BUCKETS;
const chunkStartOf = (t: number, resolution: number) => Math.floor(t / spanOf(resolution)) * spanOf(resolution);
const fieldsOf = (kind: MetricKind): readonly string[] => (kind === "guest" ? GUEST_FIELDS : HOST_FIELDS);
const GUEST_Q = GUEST_FIELDS.map((f) => GUEST_QUANTA[f]);
const HOST_Q = HOST_FIELDS.map((f) => HOST_QUANTA[f]);
const quantaOf = (kind: MetricKind) => (kind === "guest" ? GUEST_Q : HOST_Q);
const keyOf = (kind: MetricKind, subject: string) => `${kind}\0${subject}`;
/** A stored chunk, with a column for every field its kind has now. */
const decode = (kind: string, data: Uint8Array) => withFields(decodeChunk(data), fieldsOf(kind as MetricKind).length);
const seconds = (ms: number) => Math.floor(ms / 1000);

/** What the writer knows of one subject; rebuilt from the database when missing. */
interface Subject {
  kind: MetricKind;
  id: string;
  /** The newest 10 s chunk, decoded (null once it is closed and rolled up, or when there is none). */
  raw: Chunk | null;
  rawStart: number;
  /** The one before it, kept until the hour it holds is rolled up (normally in the call that closed it). */
  previous: Chunk | null;
  /** The end of the newest 10 s bucket, s (0: none). */
  rawEnd: number;
  /** The newest sample taken, ms: older ones are skipped. */
  lastAt: number;
  /** Per coarse resolution: its buckets before this are rolled up (s; -Infinity: none yet). */
  rolled: Map<number, number>;
}

interface ChunkRow {
  kind: string;
  subject: string;
  resolution: number;
  start: bigint;
  end: bigint;
  /** Null when not asked for. */
  data: Uint8Array | null;
}

interface Write {
  kind: MetricKind;
  subject: string;
  chunk: Chunk;
  start: number;
}

export class MetricStore {
  private readonly subjects = new Map<string, Subject>();
  private readonly closed: ClosedChunks;
  /** Writes take turns (a prune never runs in the middle of a call's read-modify-write). */
  private tail: Promise<unknown> = Promise.resolve();

  /** `cacheBytes`: how much of closed chunks' stored bytes reads keep (ClosedChunks). */
  constructor(
    private readonly database: PrismaClient,
    cacheBytes = 32 << 20,
  ) {
    this.closed = new ClosedChunks(cacheBytes);
  }

  private turn<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => {});
    return run;
  }

  /**
   * Takes one host's ticks (oldest first, as the agent keeps them): the host's sample and
   * those of the guests in `guests` (the host's guests in the database; others are ignored).
   */
  recordTicks(hostId: string, ticks: readonly MetricsTick[], guests: ReadonlySet<string>): Promise<void> {
    return this.turn(() => this.record(hostId, ticks, guests));
  }

  /**
   * Drops what the writer knows of every subject: another process may have written since
   * (the collector calls it when it takes a host's lease back), so each is read again.
   */
  forgetWrites(): Promise<void> {
    return this.turn(async () => this.subjects.clear());
  }

  private async record(hostId: string, ticks: readonly MetricsTick[], guests: ReadonlySet<string>): Promise<void> {
    if (ticks.length === 0) return;
    const sorted = [...ticks].sort((a, b) => a.at - b.at);
    const wanted = [{ kind: "host" as const, id: hostId }, ...[...guests].map((id) => ({ kind: "guest" as const, id }))];
    const subjects = await this.load(wanted);
    try {
      const writes = new Map<string, Write>();
      const host = subjects.get(keyOf("host", hostId))!;
      for (const tick of sorted) {
        this.take(host, tick.at, tick.host, writes);
        for (const [id, sample] of Object.entries(tick.guests)) {
          const guest = guests.has(id) ? subjects.get(keyOf("guest", id)) : undefined;
          if (guest) this.take(guest, tick.at, sample, writes);
        }
      }
      const closeAt = seconds(sorted.at(-1)!.at);
      await this.rollUps([...subjects.values()], closeAt, writes);
      await this.write([...writes.values()]);
      // A closed chunk that is rolled up is not written again: leave it to the database.
      for (const s of subjects.values()) {
        const rolled = Math.min(...COARSE.map((r) => s.rolled.get(r)!));
        if (s.previous && rolled >= s.rawStart) s.previous = null;
        if (s.raw && closeAt >= s.rawStart + spanOf(RAW) && rolled >= s.rawEnd) {
          s.lastAt = Math.max(s.lastAt, (s.rawStart + spanOf(RAW)) * 1000 - 1);
          s.raw = null;
        }
      }
    } catch (err) {
      // The cache may be ahead of the database now: read these subjects again next time.
      for (const s of subjects.values()) this.subjects.delete(keyOf(s.kind, s.id));
      throw err;
    }
  }

  /** One sample into its subject's newest 10 s chunk (skipped when not newer than the last one taken). */
  private take(s: Subject, at: number, sample: GuestSample | HostSample, writes: Map<string, Write>): void {
    if (!(at > s.lastAt)) return;
    const t = Math.floor(at / 1000 / RAW) * RAW;
    const start = chunkStartOf(t, RAW);
    if (!s.raw || start !== s.rawStart) {
      s.previous = s.raw;
      s.raw = emptyChunk(RAW, fieldsOf(s.kind).length);
      s.rawStart = start;
    }
    const values = fieldsOf(s.kind).map((f) => (sample as Record<string, number | null>)[f] ?? null);
    absorb(s.raw, t, at, values, quantaOf(s.kind));
    s.lastAt = at;
    s.rawEnd = t + RAW;
    // A late sample (another host's clock, a guest moved) reopens the coarse buckets it falls in.
    for (const r of COARSE) if (t < s.rolled.get(r)!) s.rolled.set(r, Math.floor(t / r) * r);
    writes.set(`${keyOf(s.kind, s.id)}\0${RAW}\0${start}`, { kind: s.kind, subject: s.id, chunk: s.raw, start });
  }

  /** The subjects' writer state, from the cache or, for those missing, from the database (a few queries for all). */
  private async load(wanted: ReadonlyArray<{ kind: MetricKind; id: string }>): Promise<Map<string, Subject>> {
    const out = new Map<string, Subject>();
    const missing: Array<{ kind: MetricKind; id: string }> = [];
    for (const w of wanted) {
      const known = this.subjects.get(keyOf(w.kind, w.id));
      if (known) out.set(keyOf(w.kind, w.id), known);
      else missing.push(w);
    }
    for (const part of slices(missing, 1)) {
      // Each subject's newest chunk per tier (from the primary key alone), then those rows.
      const newest = await this.database.metricChunk.groupBy({
        by: ["kind", "subject", "resolution"],
        where: { OR: bySubject(part) },
        _max: { start: true },
      });
      const rows: ChunkRow[] = [];
      for (const kind of ["guest", "host"] as const) {
        for (const resolution of METRIC_TIERS.map((t) => t.resolution)) {
          const keys = newest.filter((g) => g.kind === kind && g.resolution === resolution).map((g) => ({ subject: g.subject, start: g._max.start! }));
          rows.push(...(await this.rowsAt(kind, resolution, keys, resolution === RAW)));
        }
      }
      const found = new Map(rows.map((r) => [`${keyOf(r.kind as MetricKind, r.subject)}\0${r.resolution}`, r]));
      for (const { kind, id } of part) {
        const s: Subject = { kind, id, raw: null, rawStart: 0, previous: null, rawEnd: 0, lastAt: 0, rolled: new Map(COARSE.map((r) => [r, -Infinity])) };
        for (const r of COARSE) {
          const newest = found.get(`${keyOf(kind, id)}\0${r}`);
          if (newest) s.rolled.set(r, Number(newest.end));
        }
        const row = found.get(`${keyOf(kind, id)}\0${RAW}`);
        if (row?.data) {
          s.raw = decode(kind, row.data);
          ensureCapacity(s.raw, CHUNK_BUCKETS);
          s.rawStart = Number(row.start);
          s.rawEnd = s.raw.size ? s.raw.t[s.raw.size - 1]! + RAW : 0;
          // Without the exact time, nothing more goes into the newest bucket.
          s.lastAt = s.raw.lastAt || s.rawEnd * 1000 - 1;
        }
        this.subjects.set(keyOf(kind, id), s);
        out.set(keyOf(kind, id), s);
      }
    }
    return out;
  }

  /**
   * Rolls up, for each subject and coarse tier, the buckets that `closeAt` (the newest
   * tick's time) has closed and that hold 10 s buckets not rolled up yet. The 10 s buckets
   * come from this call's chunks and the cache, else from the database (after a restart).
   */
  private async rollUps(subjects: Subject[], closeAt: number, writes: Map<string, Write>): Promise<void> {
    const jobs: Array<{ s: Subject; r: number; from: number; to: number }> = [];
    for (const s of subjects) {
      for (const r of COARSE) {
        const from = s.rolled.get(r)!;
        const to = Math.floor(closeAt / r) * r;
        if (s.rawEnd > from && to > from) jobs.push({ s, r, from, to });
      }
    }
    if (jobs.length === 0) return;
    // 10 s chunks from memory: this call's (written or not yet) and each subject's cached one.
    const inMemory = new Map<string, Chunk[]>();
    for (const w of writes.values()) if (w.chunk.resolution === RAW) push(inMemory, keyOf(w.kind, w.subject), w.chunk);
    for (const s of subjects) {
      for (const c of [s.previous, s.raw]) if (c && !inMemory.get(keyOf(s.kind, s.id))?.includes(c)) push(inMemory, keyOf(s.kind, s.id), c);
    }
    const oldest = (s: Subject) => Math.min(...(inMemory.get(keyOf(s.kind, s.id)) ?? []).map((c) => (c.size ? chunkStartOf(c.t[0]!, RAW) : Infinity)));
    // Older ones from the database, for every job that reaches before memory.
    const reach = new Map<string, { s: Subject; from: number }>();
    for (const j of jobs) {
      if (j.from >= oldest(j.s)) continue;
      const k = keyOf(j.s.kind, j.s.id);
      reach.set(k, { s: j.s, from: Math.min(j.from, reach.get(k)?.from ?? Infinity) });
    }
    const stored = new Map<string, Chunk[]>();
    for (const { s, rows } of await this.rawBefore([...reach.values()].map(({ s, from }) => ({ s, from, before: oldest(s) })))) {
      for (const row of rows) push(stored, keyOf(s.kind, s.id), decode(s.kind, row.data!));
    }
    // The buckets, then the coarse chunks they go into (one query for all).
    const made: Array<{ s: Subject; r: number; buckets: Chunk }> = [];
    for (const j of jobs) {
      const k = keyOf(j.s.kind, j.s.id);
      const sources = [...(stored.get(k) ?? []), ...(inMemory.get(k) ?? [])].sort((a, b) => a.t[0]! - b.t[0]!);
      const buckets = rollUp(sources, j.r, j.from, j.to, quantaOf(j.s.kind));
      if (buckets.size) made.push({ s: j.s, r: j.r, buckets });
      j.s.rolled.set(j.r, j.to);
    }
    const targets = made.flatMap(({ s, r, buckets }) => [...new Set(Array.from(buckets.t.subarray(0, buckets.size), (t) => chunkStartOf(t, r)))].map((start) => ({ s, r, start })));
    const pause = breather();
    const existing = new Map<string, Chunk>();
    for (const kind of ["guest", "host"] as const) {
      for (const r of COARSE) {
        const keys = targets.filter((x) => x.s.kind === kind && x.r === r).map((x) => ({ subject: x.s.id, start: BigInt(x.start) }));
        for (const row of await this.rowsAt(kind, r, keys, true)) {
          await pause();
          existing.set(`${keyOf(kind, row.subject)}\0${r}\0${row.start}`, decode(kind, row.data!));
        }
      }
    }
    for (const { s, r, buckets } of made) {
      await pause();
      for (let i = 0; i < buckets.size; ) {
        const start = chunkStartOf(buckets.t[i]!, r);
        let j = i;
        while (j < buckets.size && buckets.t[j]! < start + spanOf(r)) j++;
        const key = `${keyOf(s.kind, s.id)}\0${r}\0${start}`;
        const target = writes.get(key)?.chunk ?? existing.get(key) ?? emptyChunk(r, fieldsOf(s.kind).length, 0);
        const merged = mergeBuckets(target, buckets, i, j);
        writes.set(key, { kind: s.kind, subject: s.id, chunk: merged, start });
        i = j;
      }
    }
  }

  /**
   * The rows at these (subject, start) keys of one kind and tier, as `subject IN … AND
   * start IN …` with the pairs picked out after: an OR of the pairs cost Prisma and SQLite
   * 5 to 10 times more (138 against 21 ms for 100 keys).
   */
  private async rowsAt(kind: MetricKind, resolution: number, keys: ReadonlyArray<{ subject: string; start: bigint }>, withData: boolean): Promise<ChunkRow[]> {
    const out: ChunkRow[] = [];
    for (const some of slices(keys, 2)) {
      const where = { kind, resolution, subject: { in: [...new Set(some.map((k) => k.subject))] }, start: { in: [...new Set(some.map((k) => k.start))] } };
      const rows = withData
        ? await this.database.metricChunk.findMany({ where, select: { subject: true, start: true, end: true, data: true } })
        : (await this.database.metricChunk.findMany({ where, select: { subject: true, start: true, end: true } })).map((r) => ({ ...r, data: null }));
      const wanted = new Set(some.map((k) => `${k.subject}\0${k.start}`));
      for (const row of rows) if (wanted.has(`${row.subject}\0${row.start}`)) out.push({ kind, resolution, ...row });
    }
    return out;
  }

  /**
   * Each subject's 10 s chunks with buckets at or after `from` and starting before `before`,
   * oldest first: one query per kind and distinct lower bound (all subjects share one but
   * after a restart or a gap), subjects in IN lists, the rest picked out after.
   */
  private async rawBefore(wants: ReadonlyArray<{ s: { kind: MetricKind; id: string }; from: number; before: number }>) {
    const out = new Map<string, { s: { kind: MetricKind; id: string }; rows: ChunkRow[] }>();
    const groups = new Map<string, typeof wants[number][]>();
    for (const w of wants) push(groups, `${w.s.kind}\0${w.from > -Infinity ? chunkStartOf(w.from, RAW) : "-"}`, w);
    for (const group of groups.values()) {
      const { s: first, from } = group[0]!;
      const before = Math.max(...group.map((w) => w.before));
      for (const some of slices(group, 1)) {
        const rows = await this.database.metricChunk.findMany({
          where: {
            kind: first.kind,
            resolution: RAW,
            subject: { in: some.map((w) => w.s.id) },
            start: { ...(from > -Infinity ? { gte: BigInt(chunkStartOf(from, RAW)) } : {}), lt: BigInt(before) },
          },
          orderBy: { start: "asc" },
          select: { subject: true, start: true, end: true, data: true },
        });
        const bySubject = new Map(some.map((w) => [w.s.id, w]));
        for (const row of rows) {
          const w = bySubject.get(row.subject)!;
          if (Number(row.start) >= w.before || Number(row.end) <= w.from) continue;
          const entry = out.get(keyOf(w.s.kind, row.subject)) ?? { s: w.s, rows: [] };
          entry.rows.push({ kind: w.s.kind, resolution: RAW, ...row });
          out.set(keyOf(w.s.kind, row.subject), entry);
        }
      }
    }
    return [...out.values()];
  }

  /** Every chunk this call changed, in one transaction (encoded first, letting other work in between). */
  private async write(writes: Write[]): Promise<void> {
    if (writes.length === 0) return;
    const pause = breather();
    const upserts = [];
    for (const { kind, subject, chunk, start } of writes) {
      await pause();
      const data = encodeChunk(chunk, quantaOf(kind));
      this.closed.delete(`${keyOf(kind, subject)}\0${chunk.resolution}\0${start}`);
      const end = BigInt(chunk.t[chunk.size - 1]! + chunk.resolution);
      upserts.push(
        this.database.metricChunk.upsert({
          where: { kind_subject_resolution_start: { kind, subject, resolution: chunk.resolution, start: BigInt(start) } },
          create: { kind, subject, resolution: chunk.resolution, start: BigInt(start), end, data },
          update: { end, data },
        }),
      );
    }
    await this.database.$transaction(upserts);
  }

  /**
   * One subject's history over a range, at the range's resolution: the buckets that
   * overlap [now − range, now]. A coarse range's newest buckets (the minute or hour still
   * running, and any not rolled up yet) are computed from the 10 s buckets, so a day's
   * graph is current to the last tick.
   */
  readSeries(kind: "guest", subject: string, range: MetricRange, now?: number): Promise<MetricSeries<GuestField>>;
  readSeries(kind: "host", subject: string, range: MetricRange, now?: number): Promise<MetricSeries<HostField>>;
  readSeries(kind: MetricKind, subject: string, range: MetricRange, now?: number): Promise<MetricSeries>;
  async readSeries(kind: MetricKind, subject: string, range: MetricRange, now = Date.now()): Promise<MetricSeries> {
    checkKind(kind);
    const spec = Object.hasOwn(METRIC_RANGES, range) ? METRIC_RANGES[range] : null;
    if (!spec) throw new GuesthouseError("invalid-input", `There is no range "${String(range)}": use one of ${Object.keys(METRIC_RANGES).join(", ")}.`);
    const to = seconds(now);
    const from = to - spec.seconds;
    const chunks = (await this.bucketsOf(kind, [subject], spec.resolution, from, to)).get(subject) ?? [];
    return seriesOf(chunks, fieldsOf(kind), spec.resolution, from, to);
  }

  /**
   * Each field's min, average, max and newest value over the last `windowSeconds` (at most a
   * day), for each subject that has any, in a few queries for all: "top consumers", and
   * thresholds such as "CPU over 90 % for 10 minutes". From the 10 s tier up to an hour,
   * coarser tiers beyond (statsResolution), the newest buckets always from the 10 s tier.
   */
  recentStats(kind: "guest", subjects: readonly string[], windowSeconds: number, now?: number): Promise<Map<string, Record<GuestField, FieldStats>>>;
  recentStats(kind: "host", subjects: readonly string[], windowSeconds: number, now?: number): Promise<Map<string, Record<HostField, FieldStats>>>;
  recentStats(kind: MetricKind, subjects: readonly string[], windowSeconds: number, now?: number): Promise<Map<string, Record<string, FieldStats>>>;
  async recentStats(kind: MetricKind, subjects: readonly string[], windowSeconds: number, now = Date.now()): Promise<Map<string, Record<string, FieldStats>>> {
    checkKind(kind);
    if (!(windowSeconds > 0 && windowSeconds <= RAW_KEEP)) throw new GuesthouseError("invalid-input", `Statistics cover from a second up to a day (${RAW_KEEP} s), not ${windowSeconds} s.`);
    const to = seconds(now);
    const from = to - windowSeconds;
    const resolution = statsResolution(windowSeconds);
    const out = new Map<string, Record<string, FieldStats>>();
    for (const [subject, chunks] of await this.bucketsOf(kind, subjects, resolution, from, to)) {
      const stats = statsOf(chunks, fieldsOf(kind), resolution, from, to);
      if (stats) out.set(subject, stats);
    }
    return out;
  }

  /**
   * The stored buckets of each subject at `resolution` that overlap [from, to], as decoded
   * chunks in time order; at a coarse resolution the buckets after the newest stored one
   * are added, rolled up from the 10 s tier.
   */
  private async bucketsOf(kind: MetricKind, subjects: readonly string[], resolution: number, from: number, to: number): Promise<Map<string, Chunk[]>> {
    const out = new Map<string, Chunk[]>();
    const lowest = Math.floor(from / resolution) * resolution;
    const pause = breather();
    for (const part of slices(subjects, 2)) {
      // Which chunks, then the bytes of those not cached.
      const rows = (
        await this.database.metricChunk.findMany({
          where: { kind, resolution, subject: { in: part }, start: startsBetween(lowest, to, resolution) },
          orderBy: { start: "asc" },
          select: { subject: true, start: true, end: true },
        })
      ).filter((row) => Number(row.end) > lowest);
      const key = (subject: string, start: bigint) => `${keyOf(kind, subject)}\0${resolution}\0${start}`;
      const bytes = new Map<string, Uint8Array>();
      const missing = rows.filter((row) => {
        const cached = this.closed.get(key(row.subject, row.start), Number(row.end));
        if (cached) bytes.set(key(row.subject, row.start), cached);
        return !cached;
      });
      for (const row of await this.rowsAt(kind, resolution, missing, true)) {
        bytes.set(key(row.subject, row.start), row.data!);
        if (Number(row.start) + spanOf(resolution) <= to) this.closed.set(key(row.subject, row.start), Number(row.end), row.data!);
      }
      const storedTo = new Map<string, number>();
      for (const row of rows) {
        const data = bytes.get(key(row.subject, row.start));
        if (!data) continue; // (pruned in between)
        await pause();
        push(out, row.subject, decode(kind, data));
        storedTo.set(row.subject, Math.max(storedTo.get(row.subject) ?? lowest, Number(row.end)));
      }
      if (resolution === RAW) continue;
      // What the coarse tier does not hold yet, from the 10 s tier.
      const raw = new Map<string, Chunk[]>();
      const tails = await this.rawBefore(part.map((subject) => ({ s: { kind, id: subject }, from: storedTo.get(subject) ?? lowest, before: to + 1 })));
      for (const { s, rows } of tails) for (const row of rows) push(raw, s.id, decode(kind, row.data!));
      for (const [subject, sources] of raw) {
        const tail = rollUp(sources, resolution, storedTo.get(subject) ?? lowest, to + 1, quantaOf(kind));
        if (tail.size) push(out, subject, tail);
      }
    }
    return out;
  }

  /**
   * Removes history past each tier's retention and that of guests and hosts that are gone
   * (`live`; read from the database when not given). Returns how many chunks went.
   */
  pruneMetrics(now = Date.now(), live?: { guests: ReadonlySet<string>; hosts: ReadonlySet<string> }): Promise<number> {
    return this.turn(async () => {
      const nowS = seconds(now);
      this.closed.clear();
      const old = await this.database.metricChunk.deleteMany({
        where: { OR: METRIC_TIERS.map((t) => ({ resolution: t.resolution, end: { lte: BigInt(nowS - t.keepSeconds) } })) },
      });
      const { guests, hosts } = live ?? {
        guests: new Set((await this.database.guest.findMany({ select: { id: true } })).map((g) => g.id)),
        hosts: new Set((await this.database.host.findMany({ select: { id: true } })).map((h) => h.id)),
      };
      const present = await this.database.metricChunk.groupBy({ by: ["kind", "subject"] });
      const gone = present.filter((p) => !(p.kind === "host" ? hosts : guests).has(p.subject));
      let removed = old.count;
      for (const kind of ["guest", "host"] as const) {
        const ids = gone.filter((g) => g.kind === kind).map((g) => g.subject);
        for (const some of slices(ids, 1)) removed += (await this.database.metricChunk.deleteMany({ where: { kind, subject: { in: some } } })).count;
        for (const id of ids) this.subjects.delete(keyOf(kind, id));
      }
      return removed;
    });
  }
}

/**
 * The stored bytes of chunks whose span has passed, for reads, least recently used first out.
 * Fetching a BLOB through Prisma costs more than the bytes (copies and a base64 round trip;
 * without the wrapper in server/db/prisma.ts an array of numbers, 11 ms of a cold year read),
 * and such a chunk no longer changes: only a late sample rolls it up again, and this process's
 * writer drops what it writes. An entry counts only while the row's `end` is the one it was read with.
 */
class ClosedChunks {
  private readonly entries = new Map<string, { end: number; data: Uint8Array }>();
  private bytes = 0;

  constructor(private readonly limit: number) {}

  get(key: string, end: number): Uint8Array | null {
    const entry = this.entries.get(key);
    if (!entry || entry.end !== end) return null;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.data;
  }

  set(key: string, end: number, data: Uint8Array): void {
    this.delete(key);
    if (data.length > this.limit) return;
    this.entries.set(key, { end, data });
    this.bytes += data.length;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.limit) break;
      this.entries.delete(oldest);
      this.bytes -= entry.data.length;
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.data.length;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

function checkKind(kind: string): asserts kind is MetricKind {
  if (kind !== "guest" && kind !== "host") throw new GuesthouseError("invalid-input", `Metrics are kept of guests and hosts, not of "${kind}".`);
}

function bySubject(list: ReadonlyArray<{ kind: MetricKind; id: string }>) {
  return (["guest", "host"] as const).flatMap((kind) => {
    const ids = list.filter((w) => w.kind === kind).map((w) => w.id);
    return ids.length ? [{ kind, subject: { in: ids } }] : [];
  });
}

/**
 * A function to await between pieces of a long run of synchronous work (an hour closing
 * encodes and decodes some 400 chunks for 100 guests, about 0.3 s): it yields to the event
 * loop once BREATHE_MS have passed, so pages and the console are not held up meanwhile.
 */
function breather(): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < BREATHE_MS) return;
    await new Promise((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}

/**
 * The chunks that can hold buckets in [from, to], as a range of `start` bounded on both sides:
 * with equality on kind, subject and resolution that makes the primary key the plain choice
 * (with only an upper bound SQLite took the (resolution, end) index and visited every
 * subject's chunks of the tier: 25 of the 40 ms of a cold year read).
 */
function startsBetween(from: number, to: number, resolution: number) {
  return { gte: BigInt(chunkStartOf(from, resolution)), lte: BigInt(to) };
}

/** `items` in parts small enough for one statement, each item taking `paramsEach` parameters. */
function* slices<T>(items: readonly T[], paramsEach: number): Generator<T[]> {
  const size = Math.max(1, Math.floor(MAX_PARAMS / paramsEach));
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

// --- The process's store ---

const slot = globalThis as unknown as { guesthouseMetricStore?: MetricStore };

/** The process's store on the process's database (on globalThis: one cache, whichever bundle loads this module). */
export function metricStore(): MetricStore {
  return (slot.guesthouseMetricStore ??= new MetricStore(db));
}

export const recordTicks = (hostId: string, ticks: readonly MetricsTick[], guests: ReadonlySet<string>) => metricStore().recordTicks(hostId, ticks, guests);

export function readSeries(kind: "guest", subject: string, range: MetricRange, now?: number): Promise<MetricSeries<GuestField>>;
export function readSeries(kind: "host", subject: string, range: MetricRange, now?: number): Promise<MetricSeries<HostField>>;
export function readSeries(kind: MetricKind, subject: string, range: MetricRange, now?: number): Promise<MetricSeries>;
export function readSeries(kind: MetricKind, subject: string, range: MetricRange, now?: number): Promise<MetricSeries> {
  return metricStore().readSeries(kind, subject, range, now);
}

export function recentStats(kind: "guest", subjects: readonly string[], windowSeconds: number, now?: number): Promise<Map<string, Record<GuestField, FieldStats>>>;
export function recentStats(kind: "host", subjects: readonly string[], windowSeconds: number, now?: number): Promise<Map<string, Record<HostField, FieldStats>>>;
export function recentStats(kind: MetricKind, subjects: readonly string[], windowSeconds: number, now?: number): Promise<Map<string, Record<string, FieldStats>>>;
export function recentStats(kind: MetricKind, subjects: readonly string[], windowSeconds: number, now?: number): Promise<Map<string, Record<string, FieldStats>>> {
  return metricStore().recentStats(kind, subjects, windowSeconds, now);
}

export const pruneMetrics = (now?: number, live?: { guests: ReadonlySet<string>; hosts: ReadonlySet<string> }) => metricStore().pruneMetrics(now, live);
