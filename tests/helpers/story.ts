/**
 * A story: a describe whose tests are steps that build on each other (log in, create a
 * guest, start it, open its console, …). After the first step that fails, the later
 * ones are skipped, each naming the step that failed, instead of every one waiting out
 * its own time-outs on a guest that never came up. Skipped steps are reported as
 * skipped, never as passed. Set-up that is no step of its own belongs in `before`.
 */
import { describe, test, type TestContext } from "node:test";

type StepBody = (t: TestContext) => unknown | Promise<unknown>;
type StepOptions = { timeout?: number };

export interface Step {
  (title: string, body: StepBody): void;
  (title: string, options: StepOptions, body: StepBody): void;
}

export function story(name: string, body: (step: Step) => void): void {
  describe(name, () => {
    let failed: string | null = null;
    /** Steps begun so far: a step cut off by its time-out may still end later, after others began. */
    let begun = 0;
    const step: Step = (title: string, a: StepOptions | StepBody, b?: StepBody) => {
      const options = typeof a === "function" ? {} : a;
      const run = typeof a === "function" ? a : b!;
      test(title, options, async (t) => {
        const mine = ++begun;
        if (failed !== null) return t.skip(`an earlier step failed: "${failed}"`);
        // Marked failed until it has passed: a step cut off by its time-out never gets to a
        // catch, and if it ends after all, later steps have begun and it clears nothing.
        failed = title;
        await run(t);
        if (begun === mine) failed = null;
      });
    };
    body(step);
  });
}
