/** Sizes and durations in the words pages show. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatBytes, formatDuration, formatMiB } from "../../server/domain/format";

describe("format", () => {
  test("sizes: whole units without decimals, one decimal otherwise", () => {
    assert.equal(formatBytes(0), "0 B");
    assert.equal(formatBytes(1023), "1023 B");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(2 * 2 ** 30), "2 GiB");
    assert.equal(formatBytes(3 * 2 ** 40 + 2 ** 39), "3.5 TiB");
    assert.equal(formatMiB(512), "512 MiB");
    assert.equal(formatMiB(4096), "4 GiB");
  });

  test("durations: seconds, then minutes and seconds, then hours and minutes; never negative", () => {
    const at = (s: number) => formatDuration(1_000_000, 1_000_000 + s * 1000);
    assert.equal(at(0), "0 s");
    assert.equal(at(59.4), "59 s");
    assert.equal(at(60), "1 min 0 s");
    assert.equal(at(3599), "59 min 59 s");
    assert.equal(at(3600), "1 h 0 min");
    assert.equal(at(2 * 3600 + 7 * 60 + 30), "2 h 7 min");
    assert.equal(at(-5), "0 s");
  });
});
