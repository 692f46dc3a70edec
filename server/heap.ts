/**
 * V8 heap growth for the long-running processes (the web server and the agent).
 *
 * Uploads and console streams move GiBs through short-lived 64 KiB Buffers. V8 counts
 * that external memory against the old generation's limit, which by default it sets
 * only ~10 % above the live heap when the heap barely grows: every few MiB of body then
 * start a full mark-compact, and more than half of an upload's CPU went to the
 * collector (docs/benchmarks.md, "Where the CPU went"). Letting the old generation grow
 * to (1 + percent/100) × its live size before the next collection stops that.
 *
 * Call it first thing in a process's main, before the heap fills. The flag is read each
 * time V8 computes a new limit, so it also applies to heaps that already grew.
 */
import v8 from "node:v8";

/** The web server's growth: its heap (Next.js, ~63 MB live) may double before a collection. */
export const WEB_HEAP_GROWING_PERCENT = 100;
/** The agent's: a small heap (~11 MB live), so a larger factor costs little. */
export const AGENT_HEAP_GROWING_PERCENT = 400;

export function giveHeapRoom(growingPercent: number): void {
  if (!Number.isInteger(growingPercent) || growingPercent < 1) throw new Error(`heap growth must be a positive whole percent, not ${growingPercent}`);
  v8.setFlagsFromString(`--heap-growing-percent=${growingPercent}`);
}
