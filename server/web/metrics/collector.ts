/**
 * The web's half of the metrics: for as long as the web runs, it fetches each host's new
 * ticks from its agent (`GET /v1/metrics?boot=&after=`) every interval and hands them to
 * the store, which keeps them downsampled in the database. Hourly, history past its
 * retention and of guests and hosts that are gone is pruned.
 *
 * Nothing is lost across restarts: the agent keeps its last hour, a web that starts again
 * asks for all of it (the store skips what it has), and an agent that restarted starts a
 * new boot, whose ticks are all new.
 *
 * Several web processes on one database (behind a load balancer) collect each host once:
 * a host's ticks are fetched and written only by the process holding its lease
 * ("metrics:<hostId>", server/db/leases.ts), renewed at every poll and again before a
 * write when the fetch took most of it. Another takes over once it expires (three polls, at least
 * 30 s), or at once when the holder stops, fetching the agent's whole hour: what the first
 * wrote is skipped, what it missed is kept. A write itself takes well under a lease.
 */
import { db } from "../../db/client";
import { holdLease, PROCESS_HOLDER, releaseLease } from "../../db/leases";
import { agentFor } from "../guests";
import { metricStore, type MetricStore } from "./store";

/** How often the collector asks each agent, unless an agent samples slower. */
const DEFAULT_POLL_MS = 10_000;
const PRUNE_EVERY_MS = 3600_000;
/** How long a host's lease lasts unrenewed: three polls, at least 30 s (a slow poll does not lose it). */
const leaseMsFor = (pollMs: number) => Math.max(3 * pollMs, 30_000);
const leaseName = (hostId: string) => `metrics:${hostId}`;

interface Cursor {
  boot: string;
  seq: number;
}

export class MetricsCollector {
  private readonly cursors = new Map<string, Cursor>();
  private timer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  /** Hosts whose agent failed last time, so a lasting outage is said once, not every poll. */
  private readonly failing = new Set<string>();
  /**
   * Until when (ms) this collector holds each host's lease, as far as it knows: a lease taken
   * again after this passed was lost meanwhile (another process may have written).
   */
  private readonly heldUntil = new Map<string, number>();

  private readonly holder: string;
  private readonly leaseMs: number;
  private readonly store: MetricStore;

  /** `options`: the process's name as a lease holder, the lease's length and the store (tests play two web processes in one). */
  constructor(
    private readonly pollMs = DEFAULT_POLL_MS,
    options: { holder?: string; leaseMs?: number; store?: MetricStore } = {},
  ) {
    this.holder = options.holder ?? PROCESS_HOLDER;
    this.leaseMs = options.leaseMs ?? leaseMsFor(pollMs);
    this.store = options.store ?? metricStore();
  }

  start(): this {
    const poll = () => {
      this.running ??= this.pollAll()
        .catch((err: unknown) => console.error("web: could not collect metrics:", err instanceof Error ? err.message : err))
        .finally(() => (this.running = null));
    };
    poll();
    this.timer = setInterval(poll, this.pollMs).unref();
    this.pruneTimer = setInterval(() => void this.prune(), PRUNE_EVERY_MS).unref();
    void this.prune();
    return this;
  }

  /** Stops collecting, and gives up its leases so that another process takes the hosts over at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.timer = this.pruneTimer = null;
    await this.running?.catch(() => {});
    const held = [...this.heldUntil.keys()];
    this.heldUntil.clear();
    await Promise.all(held.map((id) => releaseLease(db, leaseName(id), this.holder).catch(() => {})));
  }

  /** Fetches and stores every host's new ticks once (also for tests and benchmarks). */
  async pollAll(): Promise<void> {
    const hosts = await db.host.findMany({ select: { id: true, name: true, endpoint: true } });
    for (const id of this.heldUntil.keys()) if (!hosts.some((h) => h.id === id)) this.heldUntil.delete(id);
    await Promise.all(hosts.map((host) => this.pollHost(host)));
  }

  private async pollHost(host: { id: string; name: string; endpoint: string }): Promise<void> {
    try {
      if (!(await this.hold(host))) return;
      const cursor = this.cursors.get(host.id);
      const batch = await agentFor(host).metrics(cursor?.boot, cursor?.seq);
      // The fetch may have outlasted the lease (an agent that answers slowly): with less than a
      // third of it left, renewed first, or not written.
      const ample = (this.heldUntil.get(host.id) ?? 0) - Date.now() > this.leaseMs / 3;
      if (batch.ticks.length && (ample || (await this.hold(host)))) {
        const guests = await db.guest.findMany({ where: { hostId: host.id }, select: { id: true } });
        await this.store.recordTicks(host.id, batch.ticks, new Set(guests.map((g) => g.id)));
        this.cursors.set(host.id, { boot: batch.boot, seq: batch.ticks.at(-1)!.seq });
      }
      if (this.failing.delete(host.id)) console.log(`web: metrics of host ${host.name} are collected again`);
    } catch (err) {
      if (!this.failing.has(host.id)) console.error(`web: could not collect the metrics of host ${host.name} (tried again every ${this.pollMs / 1000} s):`, err instanceof Error ? err.message : err);
      this.failing.add(host.id);
    }
  }

  /** Whether this collector holds the host's lease now (taken or renewed). */
  private async hold(host: { id: string; name: string }): Promise<boolean> {
    const now = Date.now();
    const held = await holdLease(db, leaseName(host.id), this.holder, this.leaseMs, now);
    const until = this.heldUntil.get(host.id);
    if (held) {
      if (until === undefined || until <= now) {
        // Taken, or taken back after it ran out: another process may have written this host's
        // history meanwhile. What this one knows of it is read again, and the agent's whole hour.
        await this.store.forgetWrites();
        this.cursors.delete(host.id);
      }
      this.heldUntil.set(host.id, now + this.leaseMs);
    } else if (until !== undefined) {
      this.heldUntil.delete(host.id);
      this.cursors.delete(host.id);
      console.log(`web: another web process collects the metrics of host ${host.name} now`);
    }
    return held;
  }

  private async prune(): Promise<void> {
    try {
      const [guests, hosts] = await Promise.all([db.guest.findMany({ select: { id: true } }), db.host.findMany({ select: { id: true } })]);
      // Leases of hosts that are gone (and any other left unrenewed for a day).
      await db.lease.deleteMany({ where: { name: { startsWith: "metrics:" }, expiresAt: { lt: new Date(Date.now() - 24 * 3600_000) } } });
      await this.store.pruneMetrics(Date.now(), { guests: new Set(guests.map((g) => g.id)), hosts: new Set(hosts.map((h) => h.id)) });
    } catch (err) {
      console.error("web: could not prune the metrics history:", err);
    }
  }
}
