/**
 * The metrics chunk codec (server/web/metrics/codec.ts): quantizing is exact to its
 * quantum and monotonic, and a chunk comes back from its bytes exactly as it was kept,
 * nulls as nulls, whatever mix of flat, full and empty columns it holds.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { GuesthouseError } from "../../server/domain/errors";
import { GUEST_FIELDS, HOST_FIELDS } from "../../server/domain/metrics";
import { CHUNK_BUCKETS, decodeChunk, dequantize, emptyChunk, encodeChunk, GUEST_QUANTA, HOST_QUANTA, ownColumns, quantize, snap, withFields, type Chunk, type Quantum } from "../../server/web/metrics/codec";

const quantum = fc.record({ decimals: fc.integer({ min: 0, max: 3 }), bits: fc.oneof(fc.constant(0), fc.integer({ min: 4, max: 14 })) });
/** Values as the agent sends them: rates and levels from tiny to a TiB, some negative for good measure. */
const value = fc.oneof(fc.double({ min: 0, max: 1000, noNaN: true }), fc.double({ min: 0, max: 2 ** 40, noNaN: true }), fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.integer({ min: 0, max: 300 }));

/** The most a kept value may be off: half a step of 10^-decimals, plus half a relative step. */
const tolerance = (v: number, q: Quantum) => 0.5 * 10 ** -q.decimals + (q.bits ? Math.abs(v) * 2 ** -(q.bits + 1) : 0) + Math.abs(v) * 1e-12;

describe("quantize", () => {
  test("a value comes back within its quantum, and a kept value comes back exactly", () => {
    fc.assert(
      fc.property(value, quantum, (v, q) => {
        const k = quantize(v, q);
        const back = dequantize(k, q);
        assert.ok(Math.abs(back - v) <= tolerance(v, q), `${v} → ${k} → ${back} (${JSON.stringify(q)})`);
        assert.equal(quantize(back, q), k, "quantize(dequantize(k)) is k");
        assert.equal(snap(back, q), back);
      }),
      { numRuns: 5000 },
    );
  });

  test("it keeps order: a ≤ b gives quantize(a) ≤ quantize(b) (so min ≤ avg ≤ max stays true)", () => {
    fc.assert(
      fc.property(value, value, quantum, (a, b, q) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        assert.ok(quantize(lo, q) <= quantize(hi, q));
      }),
      { numRuns: 5000 },
    );
  });

  test("the precision each field keeps", () => {
    assert.equal(snap(12.34, GUEST_QUANTA.cpu), 12.3, "CPU % to 0.1 below 25.6 %");
    assert.equal(snap(0.05, GUEST_QUANTA.cpu), 0.1);
    assert.ok(Math.abs(snap(97.31, GUEST_QUANTA.cpu) - 97.31) <= 0.2, "and 8 significant bits above");
    assert.equal(snap(100, GUEST_QUANTA.diskRead), 100, "a byte rate is exact below 128 B/s");
    assert.ok(Math.abs(snap(123_456_789, GUEST_QUANTA.diskRead) / 123_456_789 - 1) <= 1 / 256, "and within 0.4 % above");
    assert.ok(Math.abs(snap(3 * 2 ** 30 + 12345, GUEST_QUANTA.rss) - (3 * 2 ** 30 + 12345)) <= 2 ** 20, "memory to a MiB at 2–4 GiB");
    assert.equal(snap(1.23, HOST_QUANTA.load1), 1.23, "load to 0.01");
    assert.equal(snap(3.5, HOST_QUANTA.guests), 3.5, "an average count need not be whole");
    assert.equal(Object.keys(GUEST_QUANTA).length, GUEST_FIELDS.length);
    assert.equal(Object.keys(HOST_QUANTA).length, HOST_FIELDS.length);
  });
});

/** A chunk of random buckets: gaps between them, nulls, flat and full columns, every value already kept (snapped). */
const chunkArb = fc
  .record({
    resolution: fc.constantFrom(10, 60, 3600),
    fields: fc.array(fc.record({ q: quantum, kind: fc.constantFrom("null", "flat", "full", "sparse") }), { minLength: 1, maxLength: 6 }),
    size: fc.integer({ min: 0, max: CHUNK_BUCKETS }),
    seed: fc.integer(),
    lastOffset: fc.option(fc.integer({ min: 0, max: 9999 }), { nil: null }),
  })
  .chain((spec) =>
    fc
      .record({
        gaps: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: spec.size, maxLength: spec.size }),
        counts: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: spec.size, maxLength: spec.size }),
        values: fc.array(fc.array(fc.tuple(value, value, value, fc.boolean()), { minLength: spec.size, maxLength: spec.size }), { minLength: spec.fields.length, maxLength: spec.fields.length }),
      })
      .map(({ gaps, counts, values }) => {
        const c = emptyChunk(spec.resolution, spec.fields.length);
        let t = 1_800_000_000 - (1_800_000_000 % (spec.resolution * CHUNK_BUCKETS));
        for (let i = 0; i < spec.size; i++) {
          c.t[i] = t;
          c.n[i] = counts[i]!;
          t += gaps[i]! * spec.resolution;
        }
        c.size = spec.size;
        spec.fields.forEach(({ q, kind }, f) => {
          if (kind === "full" || kind === "sparse") ownColumns(c, f);
          for (let i = 0; i < spec.size; i++) {
            const [a, b, d, skip] = values[f]![i]!;
            if (kind === "null" || (kind === "sparse" && skip)) continue;
            const [lo, mid, hi] = [a, b, d].map((v) => snap(v, q)).sort((x, y) => x - y) as [number, number, number];
            c.avg[f]![i] = mid;
            c.min[f]![i] = kind === "flat" ? mid : lo;
            c.max[f]![i] = kind === "flat" ? mid : hi;
          }
        });
        if (spec.size && spec.lastOffset !== null) c.lastAt = c.t[spec.size - 1]! * 1000 + spec.lastOffset;
        return { chunk: c, quanta: spec.fields.map((f) => f.q) };
      }),
  );

const plain = (c: Chunk) => ({
  resolution: c.resolution,
  size: c.size,
  lastAt: c.lastAt,
  t: Array.from(c.t.subarray(0, c.size)),
  n: Array.from(c.n.subarray(0, c.size)),
  fields: c.avg.map((_, f) => ["min", "avg", "max"].map((which) => Array.from(c[which as "min"][f]!.subarray(0, c.size), (v) => (Number.isNaN(v) ? null : v)))),
});

describe("chunks", () => {
  test("a chunk comes back from its bytes exactly: times, counts, newest sample, values and nulls", () => {
    fc.assert(
      fc.property(chunkArb, ({ chunk, quanta }) => {
        assert.deepEqual(plain(decodeChunk(encodeChunk(chunk, quanta))), plain(chunk));
      }),
      { numRuns: 300 },
    );
  });

  test("values not yet kept come back within their quantum, with min ≤ avg ≤ max", () => {
    const q: Quantum = { decimals: 1, bits: 7 };
    const c = emptyChunk(60, 1);
    ownColumns(c, 0);
    const raw = [
      [0, 0.04, 0.09],
      [1.23, 5.55, 9.99],
      [100.01, 12345.678, 1e9 + 7],
    ];
    raw.forEach(([lo, mid, hi], i) => {
      c.t[i] = 1_800_000_000 - (1_800_000_000 % 21600) + i * 60;
      c.n[i] = 6;
      c.min[0]![i] = lo!;
      c.avg[0]![i] = mid!;
      c.max[0]![i] = hi!;
    });
    c.size = raw.length;
    const back = decodeChunk(encodeChunk(c, [q]));
    raw.forEach(([lo, mid, hi], i) => {
      for (const [kept, was] of [
        [back.min[0]![i]!, lo!],
        [back.avg[0]![i]!, mid!],
        [back.max[0]![i]!, hi!],
      ] as const) {
        assert.ok(Math.abs(kept - was) <= tolerance(was, q), `${was} kept as ${kept}`);
      }
      assert.ok(back.min[0]![i]! <= back.avg[0]![i]! && back.avg[0]![i]! <= back.max[0]![i]!);
    });
  });

  test("an hour of steady single samples takes little room; min and max share avg's column", () => {
    const c = emptyChunk(10, GUEST_FIELDS.length);
    for (let i = 0; i < CHUNK_BUCKETS; i++) {
      c.t[i] = 1_800_000_000 + i * 10 - (1_800_000_000 % 3600);
      c.n[i] = 1;
      GUEST_FIELDS.forEach((field, f) => (c.avg[f]![i] = field === "memTotal" || field === "memAvailable" ? Number.NaN : snap(field === "rss" ? 2 ** 30 : i % 7, GUEST_QUANTA[field])));
    }
    c.size = CHUNK_BUCKETS;
    const bytes = encodeChunk(c, GUEST_FIELDS.map((f) => GUEST_QUANTA[f]));
    assert.ok(bytes.length < 400, `${bytes.length} bytes`);
    const back = decodeChunk(bytes);
    assert.equal(back.min[0], back.avg[0], "a flat column decodes to one array");
    assert.ok(back.avg[3]!.every(Number.isNaN), "an all-null field stays null");
  });

  test("a chunk stored before a field was appended reads with that field null", () => {
    const c = emptyChunk(60, 2);
    c.t[0] = 1_800_000_000 - (1_800_000_000 % 21600);
    c.n[0] = 6;
    c.avg[0]![0] = 1;
    c.avg[1]![0] = 2;
    c.size = 1;
    const q = { decimals: 0, bits: 0 };
    const back = withFields(decodeChunk(encodeChunk(c, [q, q])), 3);
    assert.deepEqual(plain(back).fields, [
      [[1], [1], [1]],
      [[2], [2], [2]],
      [[null], [null], [null]],
    ]);
  });

  test("damaged bytes are refused with a GuesthouseError, never read as numbers", () => {
    const c = emptyChunk(10, 2);
    c.t[0] = 1_800_000_000 - (1_800_000_000 % 3600);
    c.n[0] = 1;
    c.avg[0]![0] = 5;
    c.size = 1;
    const good = encodeChunk(c, [
      { decimals: 0, bits: 0 },
      { decimals: 0, bits: 0 },
    ]);
    for (const bad of [new Uint8Array([1, 2, 3]), good.subarray(0, good.length - 2), new Uint8Array(0)]) {
      assert.throws(() => decodeChunk(bad), (err: unknown) => err instanceof GuesthouseError && err.code === "internal" && /metrics chunk/.test(err.detail ?? ""));
    }
  });
});
