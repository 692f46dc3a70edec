/**
 * Where a process spent its CPU time, from a V8 .cpuprofile (node --cpu-prof): each
 * sample is charged to the innermost frame on its stack that belongs to a known part
 * (Prisma, React, Next.js, the app's own code, ...), so a builtin called by React
 * counts as React. Optionally only samples inside a time window (CLOCK_MONOTONIC
 * microseconds, the clock both V8 and process.hrtime use).
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [fromUs toUs]
 */
import fs from "node:fs";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const PARTS: Array<[string, RegExp]> = [
  ["Prisma + SQLite (query, row mapping)", /@prisma|[/\\]prisma[/\\]|server[/\\]db[/\\]generated|better-sqlite3|query_compiler|^wasm:/],
  ["agent client (HTTP to the agent, zod)", /agent-client|[/\\]zod[/\\]/],
  // Next.js vendors React: its app-page runtime holds the RSC renderer, react-dom/server and the app render.
  ["React + Next app render runtime (RSC, HTML)", /app-page(-turbo)?(-experimental)?\.runtime|react-dom|react-server/],
  ["app and server code", /\.next[/\\]server[/\\]chunks[/\\]ssr[/\\](app|components|server)_|[/\\](app|components|server)[/\\].*\.tsx?$/],
  ["Next.js (server, routing, Link, streams)", /next[/\\]dist|\.next[/\\]/],
  ["Node internals (http, streams, buffers)", /^node:/],
];

export interface Summary {
  totalMs: number;
  parts: Array<{ part: string; ms: number }>;
  topFunctions: Array<{ name: string; ms: number }>;
}

export function summarize(profile: Profile, fromUs = -Infinity, toUs = Infinity): Summary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const partOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = partOf.get(id);
    if (known) return known;
    let cur: number | undefined = id;
    let result = "other (builtins, GC, idle)";
    const leaf = byId.get(id)!.callFrame.functionName;
    if (leaf === "(idle)") result = "idle";
    else if (leaf === "(garbage collector)") result = "garbage collector";
    else {
      while (cur !== undefined) {
        const url = byId.get(cur)!.callFrame.url;
        const hit = url ? PARTS.find(([, re]) => re.test(url)) : undefined;
        if (hit) {
          result = hit[0];
          break;
        }
        if (url && !url.startsWith("node:")) {
          result = url.includes("/node_modules/") ? `node_modules: ${url.split("/node_modules/").pop()!.split("/")[0]}` : "app and server code";
          break;
        }
        cur = parent.get(cur);
      }
    }
    partOf.set(id, result);
    return result;
  };

  const parts = new Map<string, number>();
  const fns = new Map<string, number>();
  let t = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const dt = profile.timeDeltas[i + 1] ?? 0; // the time until the next sample belongs to this one
    const id = profile.samples[i]!;
    const part = classify(id);
    parts.set(part, (parts.get(part) ?? 0) + dt);
    if (part !== "idle") {
      total += dt;
      const f = byId.get(id)!.callFrame;
      const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
      fns.set(name, (fns.get(name) ?? 0) + dt);
    }
  }
  return {
    totalMs: total / 1000,
    parts: [...parts].map(([part, us]) => ({ part, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
    topFunctions: [...fns].map(([name, us]) => ({ name, ms: us / 1000 })).sort((a, b) => b.ms - a.ms).slice(0, 15),
  };
}

export function readProfile(file: string): Profile {
  return JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
}

export function printSummary(s: Summary, perRequests = 1): void {
  const per = perRequests > 1 ? `, ${(s.totalMs / perRequests).toFixed(0)} ms per request; per request:` : "";
  console.log(`CPU busy ${s.totalMs.toFixed(0)} ms${per}`);
  for (const p of s.parts) {
    const share = p.part === "idle" ? "" : ` ${((100 * p.ms) / s.totalMs).toFixed(0).padStart(3)}%`;
    console.log(`  ${p.part.padEnd(42)} ${(p.ms / perRequests).toFixed(1).padStart(8)} ms${share}`);
  }
  console.log("  hottest functions (self time):");
  for (const f of s.topFunctions.slice(0, 10)) console.log(`    ${(f.ms / perRequests).toFixed(1).padStart(7)} ms  ${f.name}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  const [file, from, to] = process.argv.slice(2);
  if (!file) {
    console.error("usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [fromUs toUs]");
    process.exit(2);
  }
  printSummary(summarize(readProfile(file), from ? Number(from) : undefined, to ? Number(to) : undefined));
}
