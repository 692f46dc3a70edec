/** Login throttling with a hand-driven clock. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FORGET_AFTER_MS, FREE_FAILURES, LoginThrottle, MAX_WAIT_MS, waitText } from "../../server/auth/throttle";

describe("LoginThrottle", () => {
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  test("a few failures cost nothing; after them every attempt waits, doubling, up to the cap", () => {
    const c = clock();
    const th = new LoginThrottle(c.now);
    for (let i = 0; i < FREE_FAILURES; i++) {
      assert.equal(th.waitMs("alice"), 0, `failure ${i + 1} is free`);
      th.failed("alice");
    }
    assert.equal(th.waitMs("alice"), 1000);
    c.advance(1000);
    assert.equal(th.waitMs("alice"), 0, "after the wait an attempt is looked at");
    th.failed("alice");
    assert.equal(th.waitMs("alice"), 2000);
    c.advance(2000);
    th.failed("alice");
    assert.equal(th.waitMs("alice"), 4000);
    for (let i = 0; i < 20; i++) th.failed("alice");
    assert.equal(th.waitMs("alice"), MAX_WAIT_MS, "never longer than the cap");
    assert.equal(th.waitMs("bob"), 0, "other names are not touched");
  });

  test("attempts sent at once count before their password checks end: only the free ones get in", () => {
    const c = clock();
    const th = new LoginThrottle(c.now);
    // Twenty attempts begun together, none answered yet.
    const waits = Array.from({ length: 20 }, () => th.attempt("bob"));
    assert.deepEqual(waits.slice(0, FREE_FAILURES), Array(FREE_FAILURES).fill(0), "the free attempts go ahead");
    assert.ok(waits.slice(FREE_FAILURES).every((w) => w > 0), `the rest wait: ${waits.join(", ")}`);
    // One of them had the right password: the name is clear again.
    th.succeeded("bob");
    assert.equal(th.attempt("bob"), 0);
  });

  test("a success clears the name; so does an hour without failures", () => {
    const c = clock();
    const th = new LoginThrottle(c.now);
    for (let i = 0; i < FREE_FAILURES + 3; i++) th.failed("alice");
    assert.ok(th.waitMs("alice") > 0);
    th.succeeded("alice");
    assert.equal(th.waitMs("alice"), 0);
    for (let i = 0; i < FREE_FAILURES + 3; i++) th.failed("carol");
    c.advance(FORGET_AFTER_MS + 1);
    assert.equal(th.waitMs("carol"), 0);
    th.failed("carol");
    assert.equal(th.waitMs("carol"), 0, "counting starts again");
  });

  test("it remembers a bounded number of names, dropping those that failed longest ago", () => {
    const c = clock();
    const th = new LoginThrottle(c.now);
    for (let i = 0; i < FREE_FAILURES + 1; i++) th.failed("target");
    for (let i = 0; i < 10_000; i++) th.failed(`spray-${i}`);
    assert.equal(th.waitMs("target"), 0, "the oldest name was dropped");
    for (let i = 0; i < FREE_FAILURES + 1; i++) th.failed("spray-9999");
    assert.ok(th.waitMs("spray-9999") > 0, "recent names are kept");
  });

  test("waits are told in seconds, then minutes", () => {
    assert.equal(waitText(1), "1 s");
    assert.equal(waitText(4000), "4 s");
    assert.equal(waitText(90_000), "2 min");
  });
});
