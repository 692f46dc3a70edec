/**
 * The hostile suite's figures: each suite's counts are written to
 * .cache/hostile-figures.json (merged, by suite) and printed, for docs/security.md.
 */
import fs from "node:fs";
import path from "node:path";

const FILE = path.resolve(".cache/hostile-figures.json");

export function recordFigures(suite: string, figures: Record<string, unknown>): void {
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(fs.readFileSync(FILE, "utf8")) as Record<string, unknown>;
  } catch {
    // none yet
  }
  all[suite] = { ...figures, at: new Date().toISOString() };
  fs.mkdirSync(path.dirname(FILE), { recursive: true });
  fs.writeFileSync(FILE, `${JSON.stringify(all, null, 2)}\n`);
  console.log(`hostile figures (${suite}): ${JSON.stringify(figures)}`);
}
