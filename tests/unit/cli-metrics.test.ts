/**
 * The CLI's metrics tables (cli/metrics.ts): its field table names exactly the domain's
 * fields in the API's order (its ranges and windows the API's), values read in their units, a range's latest/min/average/max
 * per field (fields with no value left out), top consumers' columns, and options refused
 * before any request.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FIELDS, formatValue, RANGES, seriesTable, TOP_WINDOWS, topQuery, topTable, type Series } from "../../cli/metrics";
import { UsageError } from "../../cli/errors";
import { GUEST_FIELDS, METRIC_RANGE_NAMES } from "../../server/domain/metrics";
import { TOP_WINDOWS as VIEW_WINDOWS } from "../../server/web/metrics/views";

describe("the CLI's metrics", () => {
  test("its field table is the domain's fields, in the same order; its ranges and windows are the API's", () => {
    assert.deepEqual(Object.keys(FIELDS), [...GUEST_FIELDS]);
    assert.deepEqual([...RANGES], METRIC_RANGE_NAMES);
    assert.deepEqual([...TOP_WINDOWS], Object.keys(VIEW_WINDOWS));
  });

  test("values read in their units; an unknown one is -", () => {
    assert.equal(formatValue("%", 97.25), "97.3 %");
    assert.equal(formatValue("%", 0), "0 %");
    assert.equal(formatValue("%", 100), "100 %");
    assert.equal(formatValue("%", 10), "10 %");
    assert.equal(formatValue("ops/s", 1200), "1200 ops/s");
    assert.equal(formatValue("bytes", 512 * 2 ** 20), "512 MiB");
    assert.equal(formatValue("bytes/s", 64 * 2 ** 20), "64 MiB/s");
    assert.equal(formatValue("ops/s", 1234.5), "1235 ops/s");
    assert.equal(formatValue("packets/s", 2.5), "2.5 pkt/s");
    assert.equal(formatValue("ms/s", 12.04), "12 ms/s");
    assert.equal(formatValue("%", null), "-");
    assert.equal(formatValue("bytes", Number.NaN), "-");
  });

  test("a range becomes a row a field with a value: the newest point, the lowest min, the average of the points, the highest max", () => {
    const series: Series = {
      resolution: 10,
      t: [0, 10, 20],
      fields: {
        cpu: { min: [10, 5, null], avg: [20, 40, null], max: [30, 90, null] },
        rss: { min: [2 ** 20, 2 ** 20, 2 ** 20], avg: [2 ** 20, 2 ** 20, 3 * 2 ** 20], max: [2 ** 20, 2 ** 20, 4 * 2 ** 20] },
        netRx: { min: [null, null, null], avg: [null, null, null], max: [null, null, null] },
      },
    };
    const { headers, rows } = seriesTable(series);
    assert.deepEqual(headers, ["field", "latest", "min", "average", "max"]);
    assert.deepEqual(rows, [
      ["CPU (of its vCPUs)", "40 %", "5 %", "30 %", "90 %"],
      ["memory held by QEMU", "3.0 MiB", "1.0 MiB", "1.7 MiB", "4.0 MiB"],
    ]);
  });

  test("top consumers: the sorted-by figure first, then CPU, memory, disk and network; a stopped guest says so", () => {
    const figures = Object.fromEntries(GUEST_FIELDS.map((f) => [f, null])) as Record<string, number | null>;
    const { headers, rows } = topTable({
      sort: "diskWrite",
      window: "hour",
      items: [
        { id: "g1", name: "web", team: { name: "Ops" }, host: { name: "local" }, running: true, figures: { ...figures, cpu: 50, diskWrite: 2 ** 20 } },
        { id: "g2", name: "db", team: { name: "Ops" }, host: { name: "local" }, running: false, figures },
      ],
    });
    assert.deepEqual(headers, ["name", "team", "host", "disk written", "CPU (of its vCPUs)", "memory held by QEMU", "disk read", "network in", "network out", "id"]);
    assert.deepEqual(rows, [
      ["web", "Ops", "local", "1.0 MiB/s", "50 %", "-", "-", "-", "-", "g1"],
      ["db (stopped)", "Ops", "local", "-", "-", "-", "-", "-", "-", "g2"],
    ]);
  });

  test("--sort and --window are checked before any request", () => {
    assert.equal(topQuery(undefined, undefined), "/metrics/top?sort=cpu&window=now");
    assert.equal(topQuery("psiIo", "day"), "/metrics/top?sort=psiIo&window=day");
    assert.throws(() => topQuery("constructor", undefined), UsageError, "only the fields themselves");
    assert.throws(() => topQuery("speed", undefined), (err: Error) => err instanceof UsageError && /--sort is one of cpu, hostCpu/.test(err.message));
    assert.throws(() => topQuery("cpu", "week"), (err: Error) => err instanceof UsageError && /--window is one of now, hour, day/.test(err.message));
  });
});
