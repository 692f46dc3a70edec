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
    const step: Step = (title: string, a: StepOptions | StepBody, b?: StepBody) => {
      const options = typeof a === "function" ? {} : a;
      const run = typeof a === "function" ? a : b!;
      test(title, options, async (t) => {
        if (failed !== null) return t.skip(`an earlier step failed: "${failed}"`);
        try {
          await run(t);
        } catch (err) {
          failed = title;
          throw err;
        }
      });
    };
    body(step);
  });
}
