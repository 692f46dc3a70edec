/** The metric graphs' pure parts: units in words, gaps in a history, live samples appended. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { appendSamples, chartColumns, formatMetric, formatTick, lastValue } from "../../components/metric-units";
import type { MetricSeries } from "../../server/domain/metrics";

describe("metric units", () => {
  test("each unit in words; none is a dash, never 0", () => {
    const cases: Array<[Parameters<typeof formatMetric>[0], number | null, string]> = [
      ["%", 97.4, "97 %"],
      ["%", 3.14, "3.1 %"],
      ["%", 0, "0 %"],
      ["%", null, "–"],
      ["bytes", 412 * 2 ** 20, "412 MiB"],
      ["bytes/s", 1536, "1.5 KiB/s"],
      ["ops/s", 12_345, "12.3k ops/s"],
      ["ops/s", 0.5, "0.5 ops/s"],
      ["ms/s", 250, "250 ms/s"],
      ["packets/s", 42, "42 pkt/s"],
      ["count", 1.25, "1.25"],
      ["count", NaN, "–"],
    ];
    for (const [unit, value, words] of cases) assert.equal(formatMetric(unit, value), words, `${value} ${unit}`);
    assert.equal(formatTick("bytes/s", 2 ** 30), "1 GiB");
    assert.equal(formatTick("%", 50), "50 %");
  });

  test("columns: a null point where the subject did not run, so the line breaks; bands carry min and max", () => {
    const t = [0, 10, 20, 100, 110];
    const avg = [1, 2, 3, 4, 5];
    const min = [0, 1, 2, 3, 4];
    const max = [2, 3, 4, 5, 6];
    const plain = chartColumns(t, 10, [{ label: "a", color: "#000", avg }], false);
    assert.deepEqual(plain, [
      [0, 10, 20, 30, 100, 110],
      [1, 2, 3, null, 4, 5],
    ]);
    const banded = chartColumns(t, 10, [{ label: "a", color: "#000", avg, min, max }], true);
    assert.equal(banded.length, 4);
    assert.deepEqual(banded[2], [0, 1, 2, null, 3, 4]);
    assert.deepEqual(banded[3], [2, 3, 4, null, 5, 6]);
    assert.equal(lastValue([1, 2, null]), 2);
  });

  test("a year of hourly points and a week of minutes are laid out in well under 100 ms (about 1 ms warm)", () => {
    for (const [n, res] of [[8784, 3600], [10_080, 60]] as const) {
      const t = Array.from({ length: n }, (_, i) => i * res);
      const col = () => Array.from({ length: n }, (_, i) => (i % 97 === 0 ? null : Math.sin(i) * 50 + 50));
      const lines = Array.from({ length: 3 }, () => ({ label: "x", color: "#000", avg: col(), min: col(), max: col() }));
      const t0 = performance.now();
      const out = chartColumns(t, res, lines, true);
      const ms = performance.now() - t0;
      assert.equal(out[0]!.length, n);
      assert.ok(ms < 100, `${n} points took ${ms.toFixed(1)} ms`);
    }
  });

  test("live samples are appended after the history's last point, and what is older than the window drops off", () => {
    const series: MetricSeries<"cpu"> = { resolution: 10, from: 0, to: 3600, t: [0, 10, 3590], fields: { cpu: { min: [1, 2, 3], avg: [1, 2, 3], max: [1, 2, 3] } } };
    const same = appendSamples(series, [{ at: 3590_000, sample: { cpu: 9 } }], 3600);
    assert.equal(same, series, "nothing newer: the same series");
    const next = appendSamples(series, [{ at: 3600_500, sample: { cpu: 50 } }, { at: 3601_500, sample: { cpu: null } }], 3600);
    assert.deepEqual(next.t, [10, 3590, 3600.5, 3601.5]);
    assert.deepEqual(next.fields.cpu.avg, [2, 3, 50, null]);
    assert.deepEqual(next.fields.cpu.max, [2, 3, 50, null]);
    assert.deepEqual(series.t, [0, 10, 3590], "the old series is left as it was");
  });
});
