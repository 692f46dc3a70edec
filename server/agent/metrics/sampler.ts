/**
 * The agent's metrics: every interval (GUESTHOUSE_METRICS_INTERVAL_MS, 10 s) it reads each
 * running guest and the host (readings.ts) and keeps the samples (rates.ts) of the last
 * hour in a ring the web fetches (`GET /v1/metrics?boot=…&after=…`) and keeps for good.
 * A guest someone watches live (its page is open) is also read every second; those
 * samples go to the page only (`GET /v1/metrics/guests/:id/live`), never to the history.
 *
 * Nothing here can stop a guest: a reading that fails (QEMU just exited, a file gone)
 * leaves that guest out of the tick.
 */
import { randomUUID } from "node:crypto";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { FolderSpace, GuestCurrent, GuestSample, MetricsBatch, MetricsCurrent, MetricsTick } from "../../domain/metrics";
import { BALLOON_ID } from "../../qemu/args";
import type { QmpClient } from "../../qemu/qmp";
import type { GuestCgroups } from "../cgroups";
import { guestSample, guestSideOfTap, hostSample, type GuestReading, type HostReading } from "./rates";
import {
  CLOCK_TICKS,
  cpuTicksOfStat,
  guestMemoryOfBalloon,
  parseLoadavg,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
  readText,
  residentPagesOfStatm,
  someStallOfPressure,
  type BlockStatsEntry,
  type InterfaceCounters,
} from "./readings";

/** What the supervisor tells of a running guest (server/agent/supervisor.ts: metricsTargets). */
export interface MetricsTarget {
  id: string;
  pid: number;
  qmp: QmpClient;
  vcpus: number;
  /** Configured memory, bytes. */
  memory: number;
  /** Its disks, each with the names QEMU may report it by (node name, drive or device id) and its image's path. */
  disks: Array<{ volume: string; names: string[]; file: string }>;
  /** Its cards, each with the tap on the host (null for user-mode networking, which runs inside QEMU). */
  nics: Array<{ mac: string; tap: string | null }>;
}

export interface MetricsOptions {
  intervalMs: number;
  /** How often a watched guest is read. */
  liveIntervalMs: number;
  /** The storage folders, by name. */
  pools: Record<string, string>;
  cgroups: GuestCgroups;
  /** How long ticks stay in the ring for the web (ms). */
  keepMs?: number;
}

/** The balloon device's QOM path (server/qemu/args.ts adds it to every guest). */
const BALLOON = `/machine/peripheral/${BALLOON_ID}`;
/** How long a live watch lasts after the page last asked. */
const WATCH_MS = 30_000;
/** How many live samples a guest keeps (two minutes at one a second). */
const LIVE_KEEP = 120;
/** statm counts pages of 4 KiB on x86-64, the only architecture QEMU runs guests on here. */
const PAGE_SIZE = 4096;
const NO_TAP_COUNTERS = "User-mode networking runs inside QEMU: the host has no counters for it.";

interface GuestMemo {
  pid: number;
  /** The vCPU threads' ids (query-cpus-fast), asked once per QEMU process. */
  tids: number[] | null;
  /** Whether the balloon answered (asked once per QEMU process; null: not yet). */
  balloon: boolean | null;
  balloonPolling: number;
  regular: GuestReading | null;
  live: GuestReading | null;
  liveSamples: Array<{ at: number; sample: GuestSample }>;
  watchedUntil: number;
}

export class Metrics {
  readonly boot = randomUUID();
  private seq = 0;
  private ticks: MetricsTick[] = [];
  private readonly memo = new Map<string, GuestMemo>();
  private host: HostReading | null = null;
  private latest = new Map<string, GuestCurrent>();
  private timers: NodeJS.Timeout[] = [];
  private busy = false;
  private readonly cores = os.cpus().length || 1;

  constructor(
    private readonly targets: () => MetricsTarget[],
    private readonly options: MetricsOptions,
  ) {}

  start(): this {
    void this.tick();
    this.timers.push(setInterval(() => void this.tick(), this.options.intervalMs).unref());
    this.timers.push(setInterval(() => void this.liveTick(), this.options.liveIntervalMs).unref());
    return this;
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  get intervalMs(): number {
    return this.options.intervalMs;
  }

  /** The ticks after `after` of this boot (all kept when it is another boot's or gone). */
  batch(boot: string | undefined, after: number | undefined): MetricsBatch {
    const sameBoot = boot === this.boot && after !== undefined && this.ticks.some((t) => t.seq <= after);
    return { boot: this.boot, intervalMs: this.options.intervalMs, ticks: sameBoot ? this.ticks.filter((t) => t.seq > after!) : [...this.ticks] };
  }

  /** Every running guest's counters and latest sample, and the host's. */
  async current(): Promise<MetricsCurrent> {
    if (!this.host) await this.tick();
    const targets = this.targets();
    // A guest that started since the last tick is read now (its levels; its rates come with the next tick).
    const fresh = targets.filter((t) => !this.latest.has(t.id));
    if (fresh.length) {
      const net = await readNetDev();
      await Promise.all(
        fresh.map(async (t) => {
          const reading = await this.read(t, net).catch(() => null);
          if (reading && !this.latest.has(t.id)) this.latest.set(t.id, { ...reading, sample: guestSample(null, reading, this.cores) });
        }),
      );
    }
    const running = new Set(targets.map((t) => t.id));
    const { cpuTicks: _ticks, guests: _guests, vcpus: _vcpus, memAllocated: _memory, ...host } = this.host!;
    return {
      // The rates of the last tick, the running guests' count and allocations as they are now.
      host: {
        ...host,
        sample: {
          ...(this.ticks.at(-1)?.host ?? hostSample(null, this.host!)),
          guests: targets.length,
          vcpus: targets.reduce((n, t) => n + t.vcpus, 0),
          memAllocated: targets.reduce((n, t) => n + t.memory, 0),
        },
      },
      guests: [...this.latest.values()].filter((g) => running.has(g.id)),
    };
  }

  /**
   * A watched guest's live samples after `after` (ms since the epoch); asking keeps the
   * watch on for WATCH_MS. Null when the guest does not run.
   */
  live(id: string, after: number): Array<{ at: number; sample: GuestSample }> | null {
    const target = this.targets().find((t) => t.id === id);
    if (!target) return null;
    const memo = this.memoOf(target);
    const starting = memo.watchedUntil < Date.now();
    memo.watchedUntil = Date.now() + WATCH_MS;
    if (starting) void this.liveTick();
    const kept = memo.liveSamples.filter((s) => s.at > after);
    // Until the first live samples come, the latest regular one stands in.
    const latest = this.latest.get(id);
    if (kept.length === 0 && latest && latest.at > after) return [{ at: latest.at, sample: latest.sample }];
    return kept;
  }

  /** One regular tick: every running guest and the host, into the ring. */
  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const targets = this.targets();
      const net = await readNetDev();
      const readings = await Promise.all(targets.map((t) => this.read(t, net).catch(() => null)));
      const host = await this.readHost(targets);
      const at = host.at;
      const guests: Record<string, GuestSample> = {};
      readings.forEach((reading, i) => {
        if (!reading) return;
        const memo = this.memoOf(targets[i]!);
        const sample = guestSample(memo.regular, reading, this.cores);
        memo.regular = reading;
        guests[reading.id] = sample;
        this.latest.set(reading.id, { ...reading, sample });
      });
      const hostNow = hostSample(this.host, host);
      this.host = host;
      this.ticks.push({ seq: ++this.seq, at, host: hostNow, guests });
      const keepFrom = at - (this.options.keepMs ?? 3600_000);
      while (this.ticks.length && this.ticks[0]!.at < keepFrom) this.ticks.shift();
      // Guests that stopped are forgotten (a start is a new QEMU with new counters).
      const running = new Set(targets.map((t) => t.id));
      for (const id of this.memo.keys()) if (!running.has(id)) this.memo.delete(id);
      for (const id of this.latest.keys()) if (!running.has(id)) this.latest.delete(id);
    } finally {
      this.busy = false;
    }
  }

  /** One live tick: the guests someone watches. */
  private async liveTick(): Promise<void> {
    const now = Date.now();
    const watched = this.targets().filter((t) => (this.memo.get(t.id)?.watchedUntil ?? 0) > now);
    if (watched.length === 0) return;
    const net = await readNetDev();
    await Promise.all(
      watched.map(async (target) => {
        const reading = await this.read(target, net).catch(() => null);
        if (!reading) return;
        const memo = this.memoOf(target);
        const sample = guestSample(memo.live, reading, this.cores);
        memo.live = reading;
        if (memo.liveSamples.length === 0 && sample.cpu === null) return; // the first reading only sets the baseline
        memo.liveSamples.push({ at: reading.at, sample });
        if (memo.liveSamples.length > LIVE_KEEP) memo.liveSamples.shift();
      }),
    );
  }

  private memoOf(target: MetricsTarget): GuestMemo {
    let memo = this.memo.get(target.id);
    if (!memo || memo.pid !== target.pid) {
      memo = { pid: target.pid, tids: null, balloon: null, balloonPolling: 0, regular: null, live: null, liveSamples: [], watchedUntil: 0 };
      this.memo.set(target.id, memo);
    }
    return memo;
  }

  /** Reads one guest's counters. */
  private async read(target: MetricsTarget, net: Map<string, InterfaceCounters>): Promise<GuestReading> {
    const memo = this.memoOf(target);
    const { qmp, pid } = target;
    if (memo.tids === null) {
      const cpus = await qmp.execute<Array<{ "cpu-index": number; "thread-id": number }>>("query-cpus-fast");
      memo.tids = cpus.sort((a, b) => a["cpu-index"] - b["cpu-index"]).map((c) => c["thread-id"]);
    }
    const wantPolling = memo.watchedUntil > Date.now() ? 1 : Math.max(1, Math.round(this.options.intervalMs / 1000));
    if (memo.balloon !== false && memo.balloonPolling !== wantPolling) {
      // The guest's driver reports its memory this often (seconds); without the device, no view from inside.
      memo.balloon = await qmp
        .execute("qom-set", { path: BALLOON, property: "guest-stats-polling-interval", value: wantPolling })
        .then(() => true, () => false);
      if (memo.balloon) memo.balloonPolling = wantPolling;
    }
    const [processStat, statm, vcpuStats, blockstats, balloon, pressure, allocated] = await Promise.all([
      fsp.readFile(`/proc/${pid}/stat`, "utf8"),
      fsp.readFile(`/proc/${pid}/statm`, "utf8"),
      Promise.all(memo.tids.map((tid) => readText(`/proc/${pid}/task/${tid}/stat`))),
      qmp.execute<BlockStatsEntry[]>("query-blockstats"),
      memo.balloon ? qmp.execute("qom-get", { path: BALLOON, property: "guest-stats" }).catch(() => null) : Promise.resolve(null),
      this.readPressure(target.id),
      Promise.all(target.disks.map((d) => fsp.stat(d.file).then((s) => s.blocks * 512, () => null))),
    ]);
    return {
      id: target.id,
      at: Date.now(),
      vcpus: target.vcpus,
      memory: target.memory,
      // A vCPU thread that is gone (QEMU exiting) counts as 0 this once; the process's own time is still right.
      vcpuSeconds: vcpuStats.map((text) => (text ? cpuTicksOfStat(text) / CLOCK_TICKS : 0)),
      processSeconds: cpuTicksOfStat(processStat) / CLOCK_TICKS,
      rss: residentPagesOfStatm(statm) * PAGE_SIZE,
      guestMemory: guestMemoryOfBalloon(balloon),
      disks: target.disks.map((disk, i) => {
        const entry = blockstats.find((b) => disk.names.includes(b["node-name"] ?? "") || disk.names.includes(b.device ?? "") || disk.names.some((n) => b.qdev?.includes(`/${n}/`)));
        const s = entry?.stats;
        return {
          volume: disk.volume,
          readBytes: s?.rd_bytes ?? 0,
          writeBytes: s?.wr_bytes ?? 0,
          readOps: s?.rd_operations ?? 0,
          writeOps: s?.wr_operations ?? 0,
          readSeconds: (s?.rd_total_time_ns ?? 0) / 1e9,
          writeSeconds: (s?.wr_total_time_ns ?? 0) / 1e9,
          allocatedBytes: allocated[i] ?? null,
        };
      }),
      nics: target.nics.map((nic) => {
        if (!nic.tap) return { mac: nic.mac, counters: null, why: NO_TAP_COUNTERS };
        const tap = net.get(nic.tap);
        return tap ? { mac: nic.mac, counters: guestSideOfTap(tap) } : { mac: nic.mac, counters: null, why: `Its tap ${nic.tap} is not on the host (yet).` };
      }),
      pressure,
    };
  }

  private async readPressure(id: string): Promise<GuestReading["pressure"]> {
    const files = this.options.cgroups.pressureFiles(id);
    if (!files) return null;
    const [cpu, memory, io] = await Promise.all([readText(files.cpu), readText(files.memory), readText(files.io)]);
    if (!cpu || !memory || !io) return null;
    return { cpu: someStallOfPressure(cpu) / 1e6, memory: someStallOfPressure(memory) / 1e6, io: someStallOfPressure(io) / 1e6 };
  }

  private async readHost(targets: MetricsTarget[]): Promise<HostReading> {
    const [stat, meminfo, loadavg, folders] = await Promise.all([
      fsp.readFile("/proc/stat", "utf8"),
      fsp.readFile("/proc/meminfo", "utf8"),
      fsp.readFile("/proc/loadavg", "utf8"),
      Promise.all(Object.entries(this.options.pools).map(([pool, dir]) => folderSpace(pool, dir))),
    ]);
    const cpuTicks = parseProcStat(stat);
    const mem = parseMeminfo(meminfo);
    return {
      at: Date.now(),
      cores: this.cores,
      cpuBusySeconds: cpuTicks.busy / CLOCK_TICKS,
      cpuTicks,
      memTotal: mem.total,
      memAvailable: mem.available,
      load: parseLoadavg(loadavg),
      folders: folders.filter((f): f is FolderSpace => f !== null),
      pressureUnavailable: this.options.cgroups.unavailable,
      guests: targets.length,
      vcpus: targets.reduce((n, t) => n + t.vcpus, 0),
      memAllocated: targets.reduce((n, t) => n + t.memory, 0),
    };
  }
}

async function readNetDev(): Promise<Map<string, InterfaceCounters>> {
  const text = await readText("/proc/net/dev");
  return text ? parseNetDev(text) : new Map();
}

async function folderSpace(pool: string, dir: string): Promise<FolderSpace | null> {
  try {
    const s = await fsp.statfs(path.resolve(dir));
    // bavail: what an unprivileged writer (QEMU) may still use.
    return { pool, totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  } catch {
    return null;
  }
}
