/** Small helpers shared by the benchmarks: order statistics, formatting, timing. */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { DEMO_ISO } from "../tests/helpers/agent";

/** The median (the mean of the two middle values for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The p-th percentile by nearest rank (p90 of 10 values is the 9th smallest). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[rank - 1]!;
}

export function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

export function verdict(ok: boolean): "PASS" | "MISS" {
  return ok ? "PASS" : "MISS";
}

export function sleep(msToWait: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, msToWait));
}

/** One line describing the machine, for the record. */
export function machineLine(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((l) => l.toFixed(2)).join(" ");
  return `${cpus.length} CPU(s) (${cpus[0]?.model ?? "?"}), load average ${load}, node ${process.version}, ${new Date().toISOString()}`;
}

/** CPU time (user + system, in ms) a process has used so far, from /proc; null if it is gone. */
export function cpuTimeMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/**
 * What a benchmark needs before it can run and is missing, as a line to print (null when
 * all is there): the demo ISO, and for those that serve the built app, `.next`.
 */
export function missingPrerequisite({ build }: { build: boolean }): string | null {
  if (!fs.existsSync(DEMO_ISO)) return `${DEMO_ISO} is missing: run bash scripts/fixtures.sh first.`;
  if (build && !fs.existsSync(".next/BUILD_ID")) return ".next is missing: run NODE_ENV=production npx next build first.";
  return null;
}

/** The program's path on PATH, or null if it is not installed. */
export function which(program: string): string | null {
  const r = spawnSync("sh", ["-c", 'command -v "$1"', "sh", program], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The items rotated left by `by` places: each one goes first in turn over rounds. */
export function rotate<T>(items: T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * The most units per second a pipeline of processes can move on this machine's cores:
 * its CPU seconds per unit (all processes) spread over every core, and no faster than
 * its busiest single thread, which runs on one core.
 */
export function cpuCeiling(cpuSecondsPerUnit: number, busiestThreadSecondsPerUnit: number): number {
  return Math.min(os.cpus().length / cpuSecondsPerUnit, 1 / busiestThreadSecondsPerUnit);
}

/** Waits until the guests' QEMUs have finished booting (each below 30% of a CPU over 2 s). */
export async function waitIdle(pids: number[], timeoutMs = 180_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let usage: number[] = [];
  while (Date.now() < deadline) {
    const a = pids.map((p) => cpuTimeMs(p) ?? 0);
    await sleep(2000);
    const b = pids.map((p) => cpuTimeMs(p) ?? 0);
    usage = b.map((v, i) => (v - a[i]!) / 2000);
    if (usage.every((u) => u < 0.3)) return usage;
  }
  console.log(`note: the guests still use ${usage.map((u) => `${(u * 100).toFixed(0)}%`).join(", ")} of a CPU after ${timeoutMs / 1000} s`);
  return usage;
}
