/** The agent's task runner: state changes, holding images, cancelling, progress, memory. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { qemuImgReason, runQemuImg, Tasks } from "../../server/agent/tasks";
import { JobSlots } from "../../server/slots";
import { GuesthouseError } from "../../server/domain/errors";
import type { TaskStatus } from "../../server/domain/types";

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe("tasks", () => {
  test("a task goes running → succeeded with its message, progress 1, and is emitted each time", async () => {
    const tasks = new Tasks();
    const seen: TaskStatus[] = [];
    tasks.on("task", (t) => seen.push(t));
    const { status, done } = tasks.start("create", "make a", ["default/a"], async () => "made a");
    assert.equal(status.state, "running");
    const final = await done;
    assert.equal(final.state, "succeeded");
    assert.equal(final.message, "made a");
    assert.equal(final.progress, 1);
    assert.ok(final.finishedAt! >= final.startedAt);
    assert.deepEqual(seen.map((t) => t.state), ["running", "succeeded"]);
  });

  test("a failure keeps its reason; run() throws the original error with its code", async () => {
    const tasks = new Tasks();
    await assert.rejects(
      tasks.run("resize", "r", ["default/b"], async () => {
        throw new GuesthouseError("conflict", "nope, busy");
      }),
      (err: GuesthouseError) => err.code === "conflict" && err.message === "nope, busy",
    );
    const [t] = tasks.list();
    assert.equal(t!.state, "failed");
    assert.equal(t!.message, "nope, busy");
    await assert.rejects(
      tasks.run("resize", "r", ["default/b"], async () => {
        throw new Error("boom");
      }),
      (err: GuesthouseError) => err.code === "internal" && /boom/.test(err.message),
    );
  });

  test("an image held by a running task refuses a second task until the first ends", async () => {
    const tasks = new Tasks();
    let release!: () => void;
    const first = tasks.start("convert", "c", ["default/a", "default/b"], () => new Promise<null>((r) => (release = () => r(null))));
    assert.throws(() => tasks.start("resize", "r", ["default/b"], async () => null), (err: GuesthouseError) => err.code === "conflict" && /busy/.test(err.message));
    assert.equal(tasks.holder("default/a")?.id, first.status.id);
    // Another image is free meanwhile.
    await tasks.run("resize", "r", ["default/c"], async () => null);
    release();
    await first.done;
    assert.equal(tasks.holder("default/b"), null);
    await tasks.run("resize", "r", ["default/b"], async () => null);
  });

  test("cancel aborts the signal and ends as cancelled, releasing the image", async () => {
    const tasks = new Tasks();
    const { status, done } = tasks.start("convert", "c", ["default/a"], (ctx) =>
      new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))),
    );
    await tick();
    tasks.cancel(status.id);
    const final = await done;
    assert.equal(final.state, "cancelled");
    assert.equal(tasks.holder("default/a"), null);
    // Cancelling a finished task changes nothing; an unknown id is "not found".
    assert.equal(tasks.cancel(status.id).state, "cancelled");
    assert.throws(() => tasks.cancel("tnope000000"), (err: GuesthouseError) => err.code === "not-found");
  });

  test("a task that finishes although it was cancelled still counts as cancelled", async () => {
    const tasks = new Tasks();
    const { status, done } = tasks.start("convert", "c", ["x"], async () => {
      await tick(20);
      return "done anyway";
    });
    tasks.cancel(status.id);
    assert.equal((await done).state, "cancelled");
  });

  test("progress is clamped, emitted on each whole per cent, not on every tiny step", async () => {
    const tasks = new Tasks();
    const progress: Array<number | null> = [];
    tasks.on("task", (t) => t.state === "running" && progress.push(t.progress));
    await tasks.start("convert", "c", ["p"], async (ctx) => {
      for (let i = 0; i <= 1000; i++) ctx.progress(i / 1000);
      ctx.progress(7);
      ctx.progress(-1);
      return null;
    }).done;
    const values = progress.filter((p): p is number => p !== null);
    assert.ok(values.length >= 100 && values.length <= 110, `${values.length} progress events for 1001 steps`);
    assert.ok(values.every((v) => v >= 0 && v <= 1));
  });

  test("the log keeps the last 50 lines", async () => {
    const tasks = new Tasks();
    const final = await tasks.start("check", "c", ["l"], async (ctx) => {
      for (let i = 0; i < 80; i++) ctx.log(`line ${i}`);
      return null;
    }).done;
    assert.equal(final.log.length, 50);
    assert.equal(final.log[0], "line 30");
  });

  test("finished tasks are forgotten beyond 200, running ones never", async () => {
    const tasks = new Tasks();
    let release!: () => void;
    const long = tasks.start("convert", "long", ["long"], () => new Promise<null>((r) => (release = () => r(null))));
    for (let i = 0; i < 230; i++) await tasks.run("check", `c${i}`, [`t${i}`], async () => null);
    const list = tasks.list();
    assert.equal(list.filter((t) => t.state !== "running").length, 200);
    assert.ok(list.some((t) => t.id === long.status.id));
    release();
    await long.done;
  });
});

describe("qemu-img's reasons in plain words", () => {
  const table: Array<[string, RegExp]> = [
    ["qemu-img: /x/a.qcow2: Image is not in qcow2 format\n", /not a valid image of that format/],
    ["qemu-img: error while writing at byte 0: No space left on device\n", /storage folder is full/],
    ["qemu-img: Could not open 'a': Could not read qcow2 header: Invalid argument", /damaged/],
    ['qemu-img: Failed to get "write" lock\nIs another process using the image [a]?', /in use by a running guest/],
    ["qemu-img: something odd\n", /^something odd$/],
    ["", /without saying why/],
  ];
  for (const [stderr, expected] of table) test(JSON.stringify(stderr).slice(0, 50), () => assert.match(qemuImgReason(stderr), expected));
});

describe("qemu-img that does not finish", () => {
  test("is killed after its time limit with a clear error, not waited for", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-fifo-"));
    try {
      // A FIFO nobody writes to: qemu-img's open of it never returns.
      const fifo = path.join(dir, "stuck");
      execFileSync("mkfifo", [fifo]);
      const started = Date.now();
      await assert.rejects(runQemuImg(new JobSlots(1), ["info", "-f", "raw", fifo], null, undefined, { timeoutMs: 500 }), (err: GuesthouseError) => {
        assert.equal(err.code, "timeout");
        assert.match(err.message, /qemu-img info did not finish within 1 s/);
        return true;
      });
      assert.ok(Date.now() - started < 5000, "it gave up at its limit");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("job slots", () => {
  test("at most `size` at once; the rest are let in first come, first served", async () => {
    const slots = new JobSlots(2);
    const order: string[] = [];
    const releases = new Map<string, () => void>();
    const job = (name: string) =>
      slots.take().then((release) => {
        order.push(name);
        releases.set(name, release);
      });
    const all = ["a", "b", "c", "d"].map(job);
    await tick();
    assert.deepEqual(order, ["a", "b"]);
    assert.deepEqual(slots.load, { running: 2, waiting: 2 });
    releases.get("b")!();
    releases.get("b")!(); // a second release of one slot changes nothing
    await tick();
    assert.deepEqual(order, ["a", "b", "c"]);
    assert.deepEqual(slots.load, { running: 2, waiting: 1 });
    releases.get("a")!();
    await Promise.all(all);
    assert.deepEqual(order, ["a", "b", "c", "d"]);
    releases.get("c")!();
    releases.get("d")!();
    assert.deepEqual(slots.load, { running: 0, waiting: 0 });
  });

  test("a waiter hears how many are ahead as the queue moves, and a cancelled one leaves without a slot", async () => {
    const slots = new JobSlots(1);
    const first = await slots.take();
    const heardB: number[] = [];
    const heardC: number[] = [];
    const abortB = new AbortController();
    const b = slots.take(abortB.signal, (n) => heardB.push(n));
    const c = slots.take(undefined, (n) => heardC.push(n));
    assert.deepEqual([heardB, heardC], [[0], [1]]);
    abortB.abort(new Error("cancelled"));
    await assert.rejects(b, /cancelled/);
    assert.deepEqual(heardC, [1, 0], "c moved up when b left");
    assert.deepEqual(slots.load, { running: 1, waiting: 1 });
    first();
    const releaseC = await c;
    assert.deepEqual(slots.load, { running: 1, waiting: 0 });
    releaseC();
    assert.deepEqual(slots.load, { running: 0, waiting: 0 });
    await assert.rejects(slots.take(abortB.signal), /cancelled/, "an aborted signal takes no slot");
    assert.throws(() => new JobSlots(0), RangeError);
  });

  test("a task waiting for a qemu-img slot says so, then runs once the slot is free", async () => {
    const tasks = new Tasks({ qemuImgJobs: 1 });
    const hold = await tasks.jobs.take();
    const seen: Array<string | null> = [];
    tasks.on("task", (s) => seen.push(s.message));
    const { done } = tasks.start("check", "check x", ["p/x"], async (ctx) => runQemuImg(tasks.jobs, ["--version"], ctx).then((out) => out.split("\n")[0]!));
    // The task asks for its slot at once (no await comes before), so it already says it waits.
    assert.match(tasks.list()[0]!.message ?? "", /^Waiting for a qemu-img slot: next in line \(this host runs 1 at once\)\.$/);
    hold();
    const final = await done;
    assert.equal(final.state, "succeeded");
    assert.match(final.message ?? "", /qemu-img version/);
    assert.ok(seen.includes(null), "the waiting message was cleared when it got its slot");
    assert.deepEqual(tasks.jobs.load, { running: 0, waiting: 0 });
  });

  test("cancelling a task that waits for a slot ends it without running qemu-img", async () => {
    const tasks = new Tasks({ qemuImgJobs: 1 });
    const hold = await tasks.jobs.take();
    let ran = false;
    const { status, done } = tasks.start("check", "check y", ["p/y"], async (ctx) => {
      const out = await runQemuImg(tasks.jobs, ["--version"], ctx);
      ran = true;
      return out;
    });
    assert.match(tasks.get(status.id).message ?? "", /Waiting for a qemu-img slot/);
    tasks.cancel(status.id);
    assert.equal((await done).state, "cancelled");
    assert.equal(ran, false);
    assert.deepEqual(tasks.jobs.load, { running: 1, waiting: 0 });
    hold();
  });
});
