/** Turns: work asked for one after the other never interleaves, and a failure does not stop the next. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { KeyedTurns, Turns } from "../../server/agent/turns";

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("turns", () => {
  test("each piece starts after the one before has ended, failed or not; each caller gets its own result", async () => {
    const turns = new Turns();
    const log: string[] = [];
    const piece = (name: string, fail = false) => async () => {
      log.push(`${name} start`);
      await tick();
      await tick();
      log.push(`${name} end`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
    const results = await Promise.allSettled([turns.run(piece("a")), turns.run(piece("b", true)), turns.run(piece("c"))]);
    assert.deepEqual(log, ["a start", "a end", "b start", "b end", "c start", "c end"]);
    assert.deepEqual(
      results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message)),
      ["a", "b failed", "c"],
    );
  });

  test("keyed: one key's pieces take turns, other keys run meanwhile", async () => {
    const turns = new KeyedTurns<string>();
    const log: string[] = [];
    let release!: () => void;
    const held = turns.run("x", () => new Promise<void>((resolve) => (release = resolve)).then(() => void log.push("x1")));
    const second = turns.run("x", async () => void log.push("x2"));
    await turns.run("y", async () => void log.push("y1"));
    assert.deepEqual(log, ["y1"], "y did not wait for x");
    release();
    await Promise.all([held, second]);
    assert.deepEqual(log, ["y1", "x1", "x2"]);
  });
});
