/** Login throttling with a hand-driven clock. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ADDRESS_FREE_FAILURES, FORGET_AFTER_MS, FREE_FAILURES, KNOWN_FOR_MS, KnownAddresses, loginGate, LoginThrottle, MAX_WAIT_MS, waitText } from "../../server/auth/throttle";

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

describe("the login gate: addresses in front of names", () => {
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };
  const gateWith = (c: { now: () => number }) => {
    const byName = new LoginThrottle(c.now);
    const byAddress = new LoginThrottle(c.now, ADDRESS_FREE_FAILURES);
    return { byName, gate: loginGate(byName, byAddress, new KnownAddresses(c.now)) };
  };

  test("an address failing on many names is stopped before it can push any name into long waits", () => {
    const c = clock();
    const { gate, byName } = gateWith(c);
    let failedNames = 0;
    for (let i = 0; i < 10_000; i++) {
      const r = gate.attempt(`victim-${i % 3}`, "203.0.113.9");
      if (r.by === "address") break;
      failedNames++;
    }
    assert.equal(failedNames, ADDRESS_FREE_FAILURES, "only the address's free failures reached the names");
    // 20 failures over 3 names: 7 at most on one, so a wait of 4 s at most, not the 15-minute cap.
    for (const name of ["victim-0", "victim-1", "victim-2"]) assert.ok(byName.waitMs(name) <= 1000 * 2 ** (7 - FREE_FAILURES), name);
    // Another address is not held up by this one.
    assert.equal(gate.attempt("someone", "198.51.100.1").waitMs, 0);
  });

  test("failing on thousands of other names from one address cannot evict a name's counter", () => {
    const c = clock();
    const { gate, byName } = gateWith(c);
    for (let i = 0; i < 8; i++) gate.attempt("target", `192.0.2.${i}`);
    const before = byName.waitMs("target");
    assert.ok(before > 0);
    for (let i = 0; i < 20_000; i++) if (gate.attempt(`filler-${i}`, "203.0.113.66").by === "address") break;
    assert.equal(byName.waitMs("target"), before, "the target's counter is still there");
  });

  test("a stranger failing on a name does not lock its person out of an address they logged in from before", () => {
    const c = clock();
    const { gate } = gateWith(c);
    assert.equal(gate.attempt("alice", "192.0.2.10").waitMs, 0);
    gate.succeeded("alice", "192.0.2.10");
    for (let i = 0; i < 30; i++) gate.attempt("alice", `203.0.113.${i}`);
    assert.equal(gate.attempt("alice", "203.0.113.200").by, "name", "a new address waits");
    assert.equal(gate.attempt("alice", "192.0.2.10").waitMs, 0, "alice's own browser does not");
    c.advance(KNOWN_FOR_MS + 1);
    for (let i = 0; i < 30; i++) gate.attempt("alice", `203.0.113.${i}`);
    assert.equal(gate.attempt("alice", "192.0.2.10").by, "name", "known for a time only");
  });
});
