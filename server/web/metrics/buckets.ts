/**
 * The metrics history's bucket arithmetic, on decoded chunks (codec.ts) and nothing else: a
 * sample absorbed into its 10 s bucket, buckets rolled up into a coarser tier, a tier's
 * buckets merged into a chunk, and chunks read out as a page's series or a window's
 * statistics. Pure and synchronous; the store (store.ts) decides which chunks, and keeps them.
 */
import type { MetricSeries } from "../../domain/metrics";
import { emptyChunk, ensureCapacity, ownColumns, snap, type Chunk, type Quantum } from "./codec";

/** One field of one subject over a window (recentStats). */
export interface FieldStats {
  min: number | null;
  /** Of the samples, not of the buckets (a bucket of six samples weighs six). */
  avg: number | null;
  max: number | null;
  /** The newest bucket's average. */
  last: number | null;
  /** Buckets in the window with a value, and the start of the oldest (s; null: none): how much of the window is covered. */
  buckets: number;
  since: number | null;
}

/**
 * One sample into bucket `t` of a 10 s chunk (the newest bucket or a new one after it).
 * The running average weighs each earlier sample of the bucket once, also where this field
 * had no value in some of them (a balloon driver coming up): rare, and off by little.
 */
export function absorb(chunk: Chunk, t: number, at: number, values: ReadonlyArray<number | null>, quanta: readonly Quantum[]): void {
  let i = chunk.size - 1;
  if (i < 0 || chunk.t[i] !== t) {
    ensureCapacity(chunk, chunk.size + 1);
    i = chunk.size++;
    chunk.t[i] = t;
    chunk.n[i] = 0;
    for (let f = 0; f < values.length; f++) chunk.min[f]![i] = chunk.avg[f]![i] = chunk.max[f]![i] = Number.NaN;
  }
  const n = ++chunk.n[i]!;
  for (let f = 0; f < values.length; f++) {
    const raw = values[f];
    if (raw === null || raw === undefined || !Number.isFinite(raw)) continue;
    const q = quanta[f]!;
    const v = snap(raw, q);
    const a = chunk.avg[f]![i]!;
    const first = Number.isNaN(a);
    const avg = first ? v : snap(a + (v - a) / n, q);
    const min = first ? v : Math.min(chunk.min[f]![i]!, v);
    const max = first ? v : Math.max(chunk.max[f]![i]!, v);
    if (min !== avg || max !== avg) ownColumns(chunk, f);
    chunk.avg[f]![i] = avg;
    chunk.min[f]![i] = min;
    chunk.max[f]![i] = max;
  }
  chunk.lastAt = at;
}

/**
 * The buckets of `sources` (any resolution finer than `resolution`, in time order) whose
 * start is in [from, to), rolled up into buckets of `resolution`: the min of their mins,
 * the max of their maxes, their averages weighed by their samples.
 */
export function rollUp(sources: readonly Chunk[], resolution: number, from: number, to: number, quanta: readonly Quantum[]): Chunk {
  const fields = quanta.length;
  const out = emptyChunk(resolution, fields, 0);
  for (let f = 0; f < fields; f++) ownColumns(out, f);
  const sum = new Float64Array(fields);
  const weight = new Float64Array(fields);
  const lo = new Float64Array(fields);
  const hi = new Float64Array(fields);
  let k = -1;
  const close = () => {
    for (let f = 0; f < fields; f++) {
      const has = weight[f]! > 0;
      out.avg[f]![k] = has ? snap(sum[f]! / weight[f]!, quanta[f]!) : Number.NaN;
      out.min[f]![k] = has ? snap(lo[f]!, quanta[f]!) : Number.NaN;
      out.max[f]![k] = has ? snap(hi[f]!, quanta[f]!) : Number.NaN;
    }
  };
  for (const src of sources) {
    for (let i = 0; i < src.size; i++) {
      const t = src.t[i]!;
      if (t < from || t >= to) continue;
      const bucket = Math.floor(t / resolution) * resolution;
      if (k < 0 || out.t[k] !== bucket) {
        if (k >= 0) close();
        if (out.size === out.t.length) ensureCapacity(out, Math.max(16, out.t.length * 2));
        k = out.size++;
        out.t[k] = bucket;
        out.n[k] = 0;
        sum.fill(0);
        weight.fill(0);
        lo.fill(Infinity);
        hi.fill(-Infinity);
      }
      const n = src.n[i]!;
      out.n[k] = out.n[k]! + n;
      for (let f = 0; f < fields; f++) {
        const a = src.avg[f]![i]!;
        if (Number.isNaN(a)) continue;
        sum[f] = sum[f]! + a * n;
        weight[f] = weight[f]! + n;
        lo[f] = Math.min(lo[f]!, src.min[f]![i]!);
        hi[f] = Math.max(hi[f]!, src.max[f]![i]!);
      }
    }
  }
  if (k >= 0) close();
  return out;
}

/** `target` with buckets [from, to) of `source` put in (a bucket at the same time is replaced). */
export function mergeBuckets(target: Chunk, source: Chunk, from: number, to: number): Chunk {
  const fields = source.avg.length;
  const out = emptyChunk(source.resolution, fields, target.size + (to - from));
  for (let f = 0; f < fields; f++) ownColumns(out, f);
  const copy = (src: Chunk, i: number) => {
    const k = out.size++;
    out.t[k] = src.t[i]!;
    out.n[k] = src.n[i]!;
    for (let f = 0; f < fields; f++) {
      out.min[f]![k] = src.min[f]?.[i] ?? Number.NaN;
      out.avg[f]![k] = src.avg[f]?.[i] ?? Number.NaN;
      out.max[f]![k] = src.max[f]?.[i] ?? Number.NaN;
    }
  };
  let i = 0;
  let j = from;
  while (i < target.size || j < to) {
    if (j >= to || (i < target.size && target.t[i]! < source.t[j]!)) copy(target, i++);
    else {
      if (i < target.size && target.t[i] === source.t[j]) i++;
      copy(source, j++);
    }
  }
  return out;
}

/** The chunks' buckets that overlap [from, to] as a MetricSeries (NaN back to null). */
export function seriesOf(chunks: readonly Chunk[], fields: readonly string[], resolution: number, from: number, to: number): MetricSeries {
  const picks: Array<[Chunk, number, number]> = [];
  for (const c of chunks) {
    let a = 0;
    while (a < c.size && c.t[a]! + resolution <= from) a++;
    let b = c.size;
    while (b > a && c.t[b - 1]! > to) b--;
    if (b > a) picks.push([c, a, b]);
  }
  let length = 0;
  for (const [, a, b] of picks) length += b - a;
  // Each column made at its full length at once (no growing by push: garbage, and copies of
  // what the scavenger then moves), as a packed array: JSON.stringify writes packed arrays a
  // third faster than holey ones, and one of doubles (no null in it) without a boxed number
  // a value. A column with a null must hold objects: it starts as one of nulls.
  const column = (pick: (c: Chunk) => Float64Array | undefined) => {
    let nulls = false;
    for (const [c, a, b] of picks) {
      const values = pick(c);
      if (!values) nulls = true;
      else for (let i = a; i < b && !nulls; i++) if (values[i] !== values[i]) nulls = true;
      if (nulls) break;
    }
    const out: (number | null)[] = packed(length, nulls);
    let k = 0;
    for (const [c, a, b] of picks) {
      const values = pick(c);
      if (!values) k += b - a;
      else if (nulls) {
        for (let i = a; i < b; i++, k++) {
          const v = values[i]!;
          if (v === v) out[k] = v;
        }
      } else for (let i = a; i < b; i++) out[k++] = values[i]!;
    }
    return out;
  };
  const t = packed(length, false) as number[];
  let k = 0;
  for (const [c, a, b] of picks) for (let i = a; i < b; i++) t[k++] = c.t[i]!;
  const out: MetricSeries["fields"] = {};
  fields.forEach((name, f) => {
    const avg = column((c) => c.avg[f]);
    const flat = picks.every(([c]) => c.min[f] === c.avg[f] && c.max[f] === c.avg[f]);
    out[name] = flat ? { min: avg.slice(), avg, max: avg.slice() } : { min: column((c) => c.min[f]), avg, max: column((c) => c.max[f]) };
  });
  return { resolution, from, to, t, fields: out };
}

/** Packed arrays of each length made so far, of doubles and of nulls: copied by slice() (one allocation, elements kind kept). */
const templates = { doubles: new Map<number, number[]>(), nulls: new Map<number, null[]>() };

/** A packed array of `length` elements: of doubles (0.5; writing numbers keeps it so), or of nulls. */
function packed(length: number, nulls: boolean): (number | null)[] {
  const cache = nulls ? templates.nulls : templates.doubles;
  let template: (number | null)[] | undefined = cache.get(length);
  if (!template) {
    template = [];
    for (let i = 0; i < length; i++) template.push(nulls ? null : 0.5);
    // A year, a month, a week, a day and an hour (at two alignments each): a handful of lengths.
    if (cache.size >= 32) cache.clear();
    cache.set(length, template as never);
  }
  return template.slice();
}

export function statsOf(chunks: readonly Chunk[], fields: readonly string[], resolution: number, from: number, to: number): Record<string, FieldStats> | null {
  const out: Record<string, FieldStats> = {};
  let any = false;
  fields.forEach((name, f) => {
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    let weight = 0;
    let last: number | null = null;
    let buckets = 0;
    let since: number | null = null;
    for (const c of chunks) {
      const avg = c.avg[f];
      if (!avg) continue;
      for (let i = 0; i < c.size; i++) {
        const t = c.t[i]!;
        const a = avg[i]!;
        if (t + resolution <= from || t > to || Number.isNaN(a)) continue;
        min = Math.min(min, c.min[f]![i]!);
        max = Math.max(max, c.max[f]![i]!);
        sum += a * c.n[i]!;
        weight += c.n[i]!;
        last = a;
        since ??= t;
        buckets++;
      }
    }
    if (buckets) any = true;
    out[name] = buckets ? { min, avg: sum / weight, max, last, buckets, since } : { min: null, avg: null, max: null, last: null, buckets: 0, since: null };
  });
  return any ? out : null;
}
