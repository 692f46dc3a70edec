/**
 * A metrics chunk: up to CHUNK_BUCKETS consecutive buckets of one subject at one resolution,
 * held in columns in memory and kept as a few kilobytes in the database (store.ts).
 *
 * Bytes (before raw deflate), every integer a LEB128 varint, signed ones zigzagged:
 *
 *   version (1) · resolution · field count · bucket count
 *   first bucket / resolution · newest sample's offset + 1 in ms (0: not kept)
 *   gaps between buckets, in buckets, less one (all 0 without holes)
 *   samples per bucket
 *   per field: mode (0 all null, 1 flat, 2 min/avg/max) | 4 when some buckets are null
 *              [decimals · relative bits · null bitmap · avg column · min column · max column]
 *   a column: how (AS_SPREAD, AS_VALUES, AS_DELTAS) · one integer per non-null bucket
 *
 * Values are kept as integers of a per-field quantum (quantize): neighbours' deltas are
 * small and repeat, which deflate turns into a byte or less. Each column picks the cheapest
 * of three codings (a level that drifts is cheapest as deltas, bursts among zeros as values,
 * a max as its distance from the average), which took a noisy minute tier about 15 % below
 * deltas alone. Each column carries its own quantum, so changing FIELD_QUANTA later leaves
 * older chunks readable. "Flat" is the common case of 10 s buckets with one sample each: min
 * and max are then the average and are not written at all.
 *
 * In memory a null is NaN (Float64Array columns: 8 bytes a value, no boxing); readers turn
 * it back into null at the edge.
 */
import zlib from "node:zlib";
import { GuesthouseError } from "../../domain/errors";
import type { GuestField, HostField } from "../../domain/metrics";

/** Buckets per chunk at every resolution: 1 h of 10 s, 6 h of 1 min, 15 days of 1 h. */
export const CHUNK_BUCKETS = 360;

const VERSION = 1;
/** A chunk decodes to well under this; anything larger is corrupt, not data. */
const MAX_INFLATED = 4 << 20;
/** More buckets than a chunk can hold even with odd alignment: a corrupt header. */
const MAX_BUCKETS = CHUNK_BUCKETS * 64;

/**
 * How finely a field is kept: in steps of 10^-decimals, and once a value passes 2^bits
 * steps, with `bits` significant bits only (bits 0: the fixed step everywhere). So
 * `{ decimals: 2, bits: 10 }` keeps CPU % to 0.01 below 10.24 % and to 1 part in 1,024–2,048
 * above; `{ decimals: 0, bits: 8 }` keeps a byte rate exact below 256 B/s and to 0.2–0.4 %
 * above, which is what a graph or a "top consumers" list can show anyway.
 */
export interface Quantum {
  decimals: number;
  bits: number;
}

const q = (decimals: number, bits: number): Quantum => ({ decimals, bits });
/** Percentages: 0.1 below 25.6 %, then 8 significant bits (steps of 0.1–0.4 %). */
const PERCENT = q(1, 8);
/** Memory: bytes with 10 significant bits (1 MiB steps at 1–2 GiB): a drift of a page or two is noise. */
const MEMORY = q(0, 10);
/** Byte rates: exact below 128 B/s, then 7 significant bits (error ≤ 0.4 %: below a graph's pixel). */
const BYTE_RATE = q(0, 7);
/** Operations, packets, milliseconds per second: 0.1 below 12.8, then 7 significant bits. */
const RATE = q(1, 7);

/**
 * How finely each field is kept. Chosen against the storage target (100 guests for a year
 * ≤ 200 MiB, bench/metrics-store.ts): finer steps cost bits on every noisy sample (0.01 %
 * CPU and 8-bit rates took the minute tier from 28.5 to 33.9 bytes a bucket).
 */
export const GUEST_QUANTA: Record<GuestField, Quantum> = {
  cpu: PERCENT,
  hostCpu: PERCENT,
  rss: MEMORY,
  memTotal: MEMORY,
  memAvailable: MEMORY,
  diskRead: BYTE_RATE,
  diskWrite: BYTE_RATE,
  diskReadOps: RATE,
  diskWriteOps: RATE,
  diskWait: RATE,
  netRx: BYTE_RATE,
  netTx: BYTE_RATE,
  netRxPackets: RATE,
  netTxPackets: RATE,
  netDrops: RATE,
  psiCpu: PERCENT,
  psiMemory: PERCENT,
  psiIo: PERCENT,
};

export const HOST_QUANTA: Record<HostField, Quantum> = {
  cpu: PERCENT,
  memUsed: MEMORY,
  memTotal: MEMORY,
  /** 0.01 below 2.56, then 8 significant bits. */
  load1: q(2, 8),
  /** Counts, but a bucket's average of them need not be whole. */
  guests: q(2, 8),
  vcpus: q(2, 8),
  memAllocated: MEMORY,
};

/** Buckets in columns; entries [0, size) are used, in ascending `t`. NaN stands for null. */
export interface Chunk {
  resolution: number;
  size: number;
  /** Each bucket's start, seconds since the epoch (a multiple of the resolution). */
  t: Float64Array;
  /** Samples that went into each bucket. */
  n: Float64Array;
  /**
   * Per field. A flat column's min and max may be the very array of its avg: call
   * ownColumns() before writing one of them alone.
   */
  min: Float64Array[];
  avg: Float64Array[];
  max: Float64Array[];
  /** When the newest sample in the chunk was read, ms since the epoch (0: not kept). */
  lastAt: number;
}

export function emptyChunk(resolution: number, fieldCount: number, capacity = CHUNK_BUCKETS): Chunk {
  const column = () => new Float64Array(capacity).fill(Number.NaN);
  const avg = Array.from({ length: fieldCount }, column);
  return { resolution, size: 0, t: new Float64Array(capacity), n: new Float64Array(capacity), min: [...avg], avg, max: [...avg], lastAt: 0 };
}

/** Room for `capacity` buckets (columns grown by copying; never shrunk). */
export function ensureCapacity(chunk: Chunk, capacity: number): void {
  if (chunk.t.length >= capacity) return;
  const grow = (a: Float64Array, fill: number) => {
    const b = new Float64Array(capacity).fill(fill);
    b.set(a.subarray(0, chunk.size));
    return b;
  };
  chunk.t = grow(chunk.t, 0);
  chunk.n = grow(chunk.n, 0);
  for (let f = 0; f < chunk.avg.length; f++) {
    const shared = { min: chunk.min[f] === chunk.avg[f], max: chunk.max[f] === chunk.avg[f] };
    chunk.avg[f] = grow(chunk.avg[f]!, Number.NaN);
    chunk.min[f] = shared.min ? chunk.avg[f]! : grow(chunk.min[f]!, Number.NaN);
    chunk.max[f] = shared.max ? chunk.avg[f]! : grow(chunk.max[f]!, Number.NaN);
  }
}

/**
 * The chunk with exactly `count` fields: a chunk written before a field was appended to its
 * list gets an all-null column for it (fields are only ever appended, never reordered).
 */
export function withFields(chunk: Chunk, count: number): Chunk {
  while (chunk.avg.length < count) {
    const nothing = new Float64Array(chunk.t.length).fill(Number.NaN);
    chunk.min.push(nothing);
    chunk.avg.push(nothing);
    chunk.max.push(nothing);
  }
  chunk.min.length = chunk.avg.length = chunk.max.length = count;
  return chunk;
}

/** Gives field `f` min and max arrays of their own (they may share avg's after decoding). */
export function ownColumns(chunk: Chunk, f: number): void {
  if (chunk.min[f] === chunk.avg[f]) chunk.min[f] = chunk.avg[f]!.slice();
  if (chunk.max[f] === chunk.avg[f]) chunk.max[f] = chunk.avg[f]!.slice();
}

// --- Quantizing ---

/** Powers looked up, not computed, in the loops below (a year read decodes half a million values). */
const POW2 = Array.from({ length: 64 }, (_, i) => 2 ** i);
const POW10 = Array.from({ length: 13 }, (_, i) => 10 ** i);
/** Beyond 2^50 steps (a PiB/s in bytes) a value is kept as that: varints and deltas stay exact integers. */
const LIMIT = 2 ** 50;

/** floor(log2 x) for an integer x ≥ 1. */
function exponent(x: number): number {
  if (x < 0x80000000) return 31 - Math.clz32(x);
  let e = Math.floor(Math.log2(x));
  if (POW2[e]! > x) e--;
  else if (POW2[e + 1]! <= x) e++;
  return e;
}

/** The integer a value is kept as (monotonic: a ≤ b gives quantize(a) ≤ quantize(b)). */
export function quantize(value: number, q: Quantum): number {
  // (+ 0 turns −0 into 0: a value rounded to nothing is kept as plain 0.)
  const x = Math.max(-LIMIT, Math.min(LIMIT, Math.round(value * POW10[q.decimals]!))) + 0;
  if (q.bits === 0) return x;
  const m = POW2[q.bits]!;
  return x >= m ? relative(x, q.bits) : x <= -m ? -relative(-x, q.bits) : x;
}

/** The value an integer stands for (quantize(dequantize(k)) === k). */
export function dequantize(k: number, q: Quantum): number {
  const m = q.bits === 0 ? Infinity : POW2[q.bits]!;
  const x = k >= m ? unrelative(k, q.bits) : k <= -m ? -unrelative(-k, q.bits) : k;
  // Dividing (not multiplying by 0.01) gives the double nearest the decimal: 12.34, not 12.340000000000002.
  return q.decimals === 0 ? x : x / POW10[q.decimals]!;
}

/** The value as it will be kept. */
export function snap(value: number, q: Quantum): number {
  return dequantize(quantize(value, q), q);
}

/**
 * x ≥ 2^bits with `bits` significant bits, as an integer that grows with x: in [2^e, 2^(e+1))
 * steps of 2^(e−bits), each octave 2^bits integers further on (below 2^bits, x itself).
 */
function relative(x: number, bits: number): number {
  const e = exponent(x);
  return (e - bits) * POW2[bits]! + Math.round(x / POW2[e - bits]!);
}

function unrelative(k: number, bits: number): number {
  const m = POW2[bits]!;
  const octave = Math.floor(k / m);
  return (k - octave * m + m) * POW2[octave - 1]!;
}

// --- Bytes ---

class Writer {
  private buf = new Uint8Array(8192);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.length++] = b;
  }

  uint(v: number): void {
    this.room(8);
    const buf = this.buf;
    let pos = this.length;
    if (v < 0x10000000) {
      while (v >= 0x80) {
        buf[pos++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
    } else {
      while (v >= 0x80) {
        buf[pos++] = (v % 0x80) | 0x80;
        v = Math.floor(v / 0x80);
      }
    }
    buf[pos++] = v;
    this.length = pos;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  done(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw corrupt("it ends early");
    return this.buf[this.pos++]!;
  }

  uint(): number {
    const buf = this.buf;
    let pos = this.pos;
    let v = 0;
    let scale = 1;
    for (;;) {
      if (pos >= buf.length) throw corrupt("it ends early");
      const b = buf[pos++]!;
      v += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 56) throw corrupt("a number runs too long");
    }
    this.pos = pos;
    return v;
  }

  int(): number {
    return unzigzag(this.uint());
  }

  bytes(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) throw corrupt("it ends early");
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

const zigzag = (v: number) => (v >= 0 ? 2 * v : -2 * v - 1);
const unzigzag = (z: number) => (z % 2 === 0 ? z / 2 : -(z + 1) / 2);
/** Bits of a non-negative integer (0 for 0). */
const bitLength = (z: number) => (z < 0x80000000 ? 32 - Math.clz32(z) : exponent(z) + 1);

function corrupt(why: string): GuesthouseError {
  return new GuesthouseError("internal", "Stored metrics could not be read (a damaged chunk). The details are in the server's log.", `metrics chunk: ${why}`);
}

const MODE_NULL = 0;
const MODE_FLAT = 1;
const MODE_FULL = 2;
const HAS_NULLS = 4;
/** How a column of integers is written, whichever of these costs the fewest bits: */
const AS_SPREAD = 0; // (min and max only) the distance from the average, unsigned
const AS_VALUES = 1; // the integers themselves: best for bursts among zeros
const AS_DELTAS = 2; // each less the one before: best for levels that drift

/** The chunk's bytes as stored: the columns above, deflated. `quanta` has one entry per field. */
export function encodeChunk(chunk: Chunk, quanta: readonly Quantum[]): Uint8Array<ArrayBuffer> {
  const { size, resolution } = chunk;
  if (quanta.length !== chunk.avg.length) throw new GuesthouseError("internal", "Metrics could not be saved.", `metrics chunk: ${chunk.avg.length} fields, ${quanta.length} quanta`);
  const w = new Writer();
  w.byte(VERSION);
  w.uint(resolution);
  w.uint(chunk.avg.length);
  w.uint(size);
  if (size > 0) {
    w.uint(chunk.t[0]! / resolution);
    const last = chunk.t[size - 1]! * 1000;
    w.uint(chunk.lastAt >= last ? chunk.lastAt - last + 1 : 0);
    for (let i = 1; i < size; i++) w.uint((chunk.t[i]! - chunk.t[i - 1]!) / resolution - 1);
    for (let i = 0; i < size; i++) w.uint(chunk.n[i]!);
    const scratch = { avg: new Float64Array(size), min: new Float64Array(size), max: new Float64Array(size) };
    for (let f = 0; f < chunk.avg.length; f++) encodeField(w, size, chunk.min[f]!, chunk.avg[f]!, chunk.max[f]!, quanta[f]!, scratch);
  }
  // A plain Uint8Array on an ArrayBuffer of its own, as Prisma's Bytes are typed.
  return new Uint8Array(zlib.deflateRawSync(w.done()));
}

function encodeField(w: Writer, size: number, min: Float64Array, avg: Float64Array, max: Float64Array, q: Quantum, k: { avg: Float64Array; min: Float64Array; max: Float64Array }): void {
  let count = 0;
  let flat = true;
  const shared = min === avg && max === avg;
  for (let i = 0; i < size; i++) {
    const a = avg[i]!;
    if (a !== a) continue; // NaN: null
    const mid = quantize(a, q);
    // A min above the average or a max below it (never made here) is kept as the average.
    const lo = shared ? mid : Math.min(mid, quantize(min[i]!, q));
    const hi = shared ? mid : Math.max(mid, quantize(max[i]!, q));
    k.avg[count] = mid;
    k.min[count] = lo;
    k.max[count] = hi;
    count++;
    if (lo !== mid || hi !== mid) flat = false;
  }
  if (count === 0) {
    w.byte(MODE_NULL);
    return;
  }
  const nulls = count < size;
  w.byte((flat ? MODE_FLAT : MODE_FULL) | (nulls ? HAS_NULLS : 0));
  w.uint(q.decimals);
  w.uint(q.bits);
  if (nulls) {
    const bitmap = new Uint8Array(Math.ceil(size / 8));
    for (let i = 0; i < size; i++) if (avg[i] !== avg[i]) bitmap[i >> 3]! |= 1 << (i & 7);
    w.bytes(bitmap);
  }
  writeColumn(w, k.avg, count, null);
  if (!flat) {
    writeColumn(w, k.min, count, k.avg);
    writeColumn(w, k.max, count, k.avg);
  }
}

function writeColumn(w: Writer, ks: Float64Array, count: number, avg: Float64Array | null): void {
  // Bits each coding would take, roughly (deflate does the rest).
  let asValues = 0;
  let asDeltas = 0;
  let asSpread = avg ? 0 : Infinity;
  let prev = 0;
  for (let j = 0; j < count; j++) {
    const k = ks[j]!;
    asValues += bitLength(zigzag(k));
    asDeltas += bitLength(zigzag(k - prev));
    prev = k;
    if (avg) asSpread += bitLength(Math.abs(k - avg[j]!));
  }
  const how = asSpread <= asValues && asSpread <= asDeltas ? AS_SPREAD : asValues <= asDeltas ? AS_VALUES : AS_DELTAS;
  w.byte(how);
  prev = 0;
  for (let j = 0; j < count; j++) {
    const k = ks[j]!;
    if (how === AS_SPREAD) w.uint(Math.abs(k - avg![j]!));
    else if (how === AS_VALUES) w.uint(zigzag(k));
    else w.uint(zigzag(k - prev));
    prev = k;
  }
}

/** A column back (Reader.uint inlined: this loop is most of a year read). */
function readColumn(r: Reader, count: number, avg: Float64Array | null, sign: 1 | -1, out: Float64Array): void {
  const how = r.byte();
  if (how > AS_DELTAS || (how === AS_SPREAD && !avg)) throw corrupt(`column coding ${how}`);
  const buf = r.buf;
  const end = buf.length;
  let pos = r.pos;
  let prev = 0;
  for (let j = 0; j < count; j++) {
    if (pos >= end) throw corrupt("it ends early");
    let b = buf[pos++]!;
    let v = b & 0x7f;
    for (let scale = 0x80; b >= 0x80; scale *= 0x80) {
      if (pos >= end) throw corrupt("it ends early");
      if (scale > 2 ** 56) throw corrupt("a number runs too long");
      b = buf[pos++]!;
      v += (b & 0x7f) * scale;
    }
    if (how === AS_SPREAD) out[j] = avg![j]! + sign * v;
    else {
      const d = v < 0x80000000 ? (v >>> 1) ^ -(v & 1) : unzigzag(v);
      out[j] = how === AS_VALUES ? d : (prev += d);
    }
  }
  r.pos = pos;
}

/**
 * Scratch columns of integers for decoding, grown as needed and reused (decoding is
 * synchronous): a year read decodes 26 chunks, and every array it allocates is garbage.
 */
let scratch = { avg: new Float64Array(CHUNK_BUCKETS), min: new Float64Array(CHUNK_BUCKETS), max: new Float64Array(CHUNK_BUCKETS) };

/** Hands out columns of one Float64Array: one allocation a chunk, not three a field (each its own ArrayBuffer). */
class Columns {
  private used = 0;
  private readonly all: Float64Array;
  constructor(
    private readonly size: number,
    count: number,
  ) {
    this.all = new Float64Array(size * count);
  }
  take(nulls: boolean): Float64Array {
    const c = this.all.subarray(this.used, this.used + this.size);
    this.used += this.size;
    if (nulls) c.fill(Number.NaN);
    return c;
  }
}

/** The chunk back from its stored bytes (columns exactly `size` long). */
export function decodeChunk(bytes: Uint8Array): Chunk {
  let raw: Uint8Array;
  try {
    raw = zlib.inflateRawSync(bytes, { maxOutputLength: MAX_INFLATED });
  } catch (err) {
    throw corrupt(`inflate: ${(err as Error).message}`);
  }
  const r = new Reader(raw);
  const version = r.byte();
  if (version !== VERSION) throw corrupt(`version ${version}`);
  const resolution = r.uint();
  const fields = r.uint();
  const size = r.uint();
  if (size > MAX_BUCKETS || fields > 1024 || resolution === 0) throw corrupt(`${size} buckets, ${fields} fields, resolution ${resolution}`);
  const columns = new Columns(size, 2 + 3 * fields);
  const chunk: Chunk = { resolution, size, t: columns.take(false), n: columns.take(false), min: [], avg: [], max: [], lastAt: 0 };
  if (size > 0) {
    chunk.t[0] = r.uint() * resolution;
    const lastOffset = r.uint();
    for (let i = 1; i < size; i++) chunk.t[i] = chunk.t[i - 1]! + (r.uint() + 1) * resolution;
    chunk.lastAt = lastOffset === 0 ? 0 : chunk.t[size - 1]! * 1000 + lastOffset - 1;
    for (let i = 0; i < size; i++) chunk.n[i] = r.uint();
  }
  if (scratch.avg.length < size) scratch = { avg: new Float64Array(size), min: new Float64Array(size), max: new Float64Array(size) };
  for (let f = 0; f < fields; f++) {
    const none = new Float64Array(0);
    const { min, avg, max } = size > 0 ? decodeField(r, size, scratch, columns) : { min: none, avg: none, max: none };
    chunk.min.push(min);
    chunk.avg.push(avg);
    chunk.max.push(max);
  }
  return chunk;
}

function decodeField(r: Reader, size: number, k: { avg: Float64Array; min: Float64Array; max: Float64Array }, columns: Columns): { min: Float64Array; avg: Float64Array; max: Float64Array } {
  const header = r.byte();
  const mode = header & 3;
  if (mode === MODE_NULL) {
    const nothing = columns.take(true);
    return { min: nothing, avg: nothing, max: nothing };
  }
  if (mode !== MODE_FLAT && mode !== MODE_FULL) throw corrupt(`column mode ${header}`);
  const q: Quantum = { decimals: r.uint(), bits: r.uint() };
  if (q.decimals >= POW10.length || q.bits > 52) throw corrupt(`quantum ${q.decimals}/${q.bits}`);
  const bitmap = header & HAS_NULLS ? r.bytes(Math.ceil(size / 8)) : null;
  // Every bucket gets a value unless some are null.
  const avg = columns.take(bitmap !== null);
  let count = size;
  if (bitmap) for (let i = 0; i < size; i++) if (bitmap[i >> 3]! & (1 << (i & 7))) count--;
  readColumn(r, count, null, 1, k.avg);
  // The j-th integer to the j-th non-null bucket, as its value: below 2^bits steps (most
  // values) a division is all it takes.
  const m = q.bits === 0 ? Infinity : POW2[q.bits]!;
  const scale = POW10[q.decimals]!;
  const place = (out: Float64Array, ks: Float64Array) => {
    if (!bitmap) {
      // (The common case, as its own loop: no null to skip.)
      for (let i = 0; i < size; i++) {
        const key = ks[i]!;
        out[i] = key < m && key > -m ? key / scale : dequantize(key, q);
      }
      return;
    }
    for (let i = 0, j = 0; i < size; i++) {
      if (bitmap[i >> 3]! & (1 << (i & 7))) continue;
      const key = ks[j++]!;
      out[i] = key < m && key > -m ? key / scale : dequantize(key, q);
    }
  };
  place(avg, k.avg);
  if (mode === MODE_FLAT) return { min: avg, avg, max: avg };
  const min = columns.take(bitmap !== null);
  const max = columns.take(bitmap !== null);
  readColumn(r, count, k.avg, -1, k.min);
  readColumn(r, count, k.avg, 1, k.max);
  place(min, k.min);
  place(max, k.max);
  return { min, avg, max };
}
