/**
 * Raw readings of what a guest and the host used so far: cumulative counters, as QEMU
 * and the kernel keep them. Two readings make a sample (rates.ts). The parsers are
 * pure (tested with the kernel's own formats); the readers only fetch the text.
 *
 * Sources, all cheap (a few small files and three QMP calls per guest):
 * - CPU: /proc/<pid>/task/<tid>/stat of each vCPU thread (QMP query-cpus-fast gives
 *   their ids) and /proc/<pid>/stat for the whole QEMU process; utime + stime in clock ticks.
 * - Memory: /proc/<pid>/statm (resident pages); the guest's view through the balloon
 *   device's guest-stats (QOM), when its driver reports them.
 * - Disks: QMP query-blockstats per device; each image's allocated size (st_blocks).
 * - NICs: /proc/net/dev once for every tap (the agent's network namespace is the taps').
 * - Pressure: <cgroup>/{cpu,memory,io}.pressure "some total=" in µs.
 * - Host: /proc/stat, /proc/meminfo, /proc/loadavg, statfs of each storage folder.
 */
import fsp from "node:fs/promises";

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on every Linux this runs on). */
export const CLOCK_TICKS = 100;

/** utime + stime of a /proc/<pid>/stat or task stat line, in clock ticks. */
export function cpuTicksOfStat(text: string): number {
  // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ")".
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // After the name: state is field 3, so utime (14) and stime (15) sit at 11 and 12.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`not a stat line: ${text.slice(0, 80)}`);
  return utime + stime;
}

/** Resident pages of a /proc/<pid>/statm line. */
export function residentPagesOfStatm(text: string): number {
  const pages = Number(text.trim().split(/\s+/)[1]);
  if (!Number.isFinite(pages)) throw new Error(`not a statm line: ${text.slice(0, 80)}`);
  return pages;
}

export interface InterfaceCounters {
  rxBytes: number;
  rxPackets: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txDropped: number;
}

/** Every interface's counters from /proc/net/dev, as the host sees them. */
export function parseNetDev(text: string): Map<string, InterfaceCounters> {
  const out = new Map<string, InterfaceCounters>();
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit: bytes packets errs drop …
    out.set(line.slice(0, colon).trim(), { rxBytes: f[0]!, rxPackets: f[1]!, rxDropped: f[3]!, txBytes: f[8]!, txPackets: f[9]!, txDropped: f[11]! });
  }
  return out;
}

/** The "some … total=" of a PSI file (cpu.pressure, memory.pressure, io.pressure), in µs. */
export function someStallOfPressure(text: string): number {
  const match = /^some .*total=(\d+)/m.exec(text);
  if (!match) throw new Error(`not a pressure file: ${text.slice(0, 80)}`);
  return Number(match[1]);
}

export interface HostCpuTimes {
  busy: number;
  total: number;
}

/** The aggregate "cpu" line of /proc/stat, in clock ticks: busy (all but idle and iowait) and total. */
export function parseProcStat(text: string): HostCpuTimes {
  const line = text.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) throw new Error("/proc/stat has no cpu line");
  // user nice system idle iowait irq softirq steal guest guest_nice: guest time is already in user.
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait! };
}

/** MemTotal and MemAvailable of /proc/meminfo, in bytes. */
export function parseMeminfo(text: string): { total: number; available: number } {
  const kib = (key: string) => {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
    if (!match) throw new Error(`/proc/meminfo has no ${key}`);
    return Number(match[1]) * 1024;
  };
  return { total: kib("MemTotal"), available: kib("MemAvailable") };
}

/** The three load averages of /proc/loadavg. */
export function parseLoadavg(text: string): [number, number, number] {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  return [a!, b!, c!];
}

/** One device's counters in a query-blockstats answer. */
export interface BlockStatsEntry {
  device?: string;
  "node-name"?: string;
  qdev?: string;
  stats: {
    rd_bytes: number;
    wr_bytes: number;
    rd_operations: number;
    wr_operations: number;
    rd_total_time_ns: number;
    wr_total_time_ns: number;
  };
}

/** The balloon's guest-stats (QOM): what the guest's driver last reported, or null when it never did. */
export function guestMemoryOfBalloon(answer: unknown): { total: number; free: number; available: number } | null {
  const a = answer as { stats?: Record<string, number>; "last-update"?: number } | null;
  if (!a?.stats || !a["last-update"]) return null;
  // A figure the driver does not report is 2^64 - 1 (JSON turns it into 18446744073709552000).
  const known = (v: number | undefined) => (v === undefined || v >= 2 ** 63 ? null : v);
  const total = known(a.stats["stat-total-memory"]);
  const free = known(a.stats["stat-free-memory"]);
  const available = known(a.stats["stat-available-memory"]) ?? free;
  if (total === null || free === null || available === null) return null;
  return { total, free, available };
}

/** A file's text, or null when it is gone (a process that exited, a cgroup removed). */
export async function readText(file: string): Promise<string | null> {
  try {
    return await fsp.readFile(file, "utf8");
  } catch {
    return null;
  }
}
