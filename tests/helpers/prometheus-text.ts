/** Reading `/metrics`' text as Prometheus does, for tests: a strict parser of the text format and Debian's promtool. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

export interface ParsedSample {
  name: string;
  /** Label values unescaped, as a scraper stores them. */
  labels: Record<string, string>;
  value: string;
}

/** The samples of an exposition text, and each family's TYPE and HELP; fails on any line out of the format. */
export function parseExposition(text: string): { samples: ParsedSample[]; types: Map<string, string>; helps: Map<string, string> } {
  const samples: ParsedSample[] = [];
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  assert.ok(text === "" || text.endsWith("\n"), "the text ends with a newline");
  for (const line of text.split("\n").slice(0, -1)) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const map = meta[1] === "TYPE" ? types : helps;
      assert.ok(!map.has(meta[2]!), `one ${meta[1]} line for ${meta[2]}`);
      map.set(meta[2]!, meta[3]!);
      continue;
    }
    // `s`: a label value may hold any character but an unescaped newline (a carriage return, say).
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/s.exec(line);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    let rest = m[2] ? m[2].slice(1, -1) : "";
    while (rest) {
      const l = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
      assert.ok(l, `labels: ${JSON.stringify(m[2])}`);
      labels[l[1]!] = l[2]!.replace(/\\([\\"n])/g, (_, c: string) => (c === "n" ? "\n" : c));
      rest = rest.slice(l[0].length);
    }
    samples.push({ name: m[1]!, labels, value: m[3]! });
  }
  return { samples, types, helps };
}

/** `promtool check metrics` on a text: its exit status and what it said. */
export function promtool(text: string): { status: number | null; output: string } {
  const run = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8", timeout: 30_000 });
  if (run.error) throw new Error(`promtool did not run (scripts/setup.sh --test installs Debian's prometheus): ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
