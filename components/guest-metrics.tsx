"use client";

import { useState } from "react";
import type { GuestCurrent, GuestField, MetricRange, MetricSeries } from "@/server/domain/metrics";
import { formatBytes } from "@/server/domain/format";
import { MetricChart } from "./metric-chart";
import { RangeButtons, useMetricHistory } from "./metric-panels";
import { COLORS, formatMetric, hasValues, lineOf } from "./metric-units";
import { usePolling } from "./use-polling";

type Series = MetricSeries<GuestField>;

const line = lineOf<GuestField>;

export interface GuestMetricsProps {
  guestId: string;
  /** QEMU runs (running or paused): its samples can be streamed, its counters read. */
  running: boolean;
  vcpus: number;
  /** Configured memory, bytes. */
  memory: number;
  /** Its cards: how many, and whether all are user-mode (no counters). */
  nics: { count: number; allUserMode: boolean };
  /** Its disks' names by volume, for the counters table. */
  diskNames: Record<string, string>;
}

/**
 * The guest page's Metrics: graphs of CPU, memory, disks, network and pressure over a
 * range, live (a point a second) while the range is the last hour and the guest runs, and
 * its counters now per vCPU, disk and card.
 */
export function GuestMetrics({ guestId, running, vcpus, memory, nics, diskNames }: GuestMetricsProps) {
  const [range, setRange] = useState<MetricRange>("hour");
  const base = `/api/v1/guests/${guestId}/metrics`;
  const { series, error, live, loading } = useMetricHistory<GuestField>(base, range, running ? `${base}/live` : null);
  const band = (series?.resolution ?? 10) > 10;

  return (
    <section className="space-y-3" aria-label="Metrics" data-testid="guest-metrics">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 className="text-lg font-semibold">Metrics</h2>
        <RangeButtons range={range} onChange={setRange} live={live} />
      </div>
      {error && <p className="card border-red-200 bg-red-50 p-3 text-sm text-red-800" data-testid="metrics-error">{error}</p>}
      {!series ? (
        <p className="card p-6 text-center text-sm text-slate-500">{loading ? "Loading the history…" : "No history."}</p>
      ) : (
        <GuestCharts series={series} band={band} vcpus={vcpus} memory={memory} nics={nics} />
      )}
      {running && <GuestCounters guestId={guestId} diskNames={diskNames} />}
    </section>
  );
}

function GuestCharts({ series: s, band, vcpus, memory, nics }: { series: Series; band: boolean; vcpus: number; memory: number; nics: GuestMetricsProps["nics"] }) {
  const common = { t: s.t, resolution: s.resolution, from: s.from, to: s.to, band };
  const balloon = hasValues(s.fields.memTotal?.avg);
  const netCounters = hasValues(s.fields.netRx?.avg) || hasValues(s.fields.netTx?.avg);
  const noNet = nics.count === 0 ? "The guest has no network card." : nics.allUserMode ? "User-mode networking has no counters: it runs inside QEMU. Cards on a managed network have." : "No network counters in this range.";
  const anyData = s.t.length > 0;
  return (
    <>
      {!anyData && <p className="text-sm text-slate-500" data-testid="metrics-none">No samples in this range: the guest has not run in it (or the history starts later).</p>}
      <div className="grid gap-3 lg:grid-cols-2">
        <MetricChart
          {...common}
          testId="chart-cpu"
          title={`CPU (% of its ${vcpus} vCPU${vcpus === 1 ? "" : "s"}; QEMU: % of the host)`}
          unit="%"
          yMax={100}
          lines={[line(s, "cpu", "vCPUs", COLORS.indigo), line(s, "hostCpu", "QEMU on the host", COLORS.amber)]}
          empty="No CPU samples in this range."
        />
        <div className="min-w-0 space-y-1">
          <MetricChart
            {...common}
            testId="chart-memory"
            title="Memory"
            unit="bytes"
            lines={[
              line(s, "rss", "QEMU resident", COLORS.indigo),
              ...(balloon ? [line(s, "memTotal", "guest total", COLORS.sky), line(s, "memAvailable", "guest available", COLORS.emerald)] : []),
            ]}
            levels={[{ label: `configured ${formatBytes(memory)}`, value: memory, color: COLORS.slate }]}
            figure={formatMetric("bytes", lastOf(s, "rss"))}
            empty="No memory samples in this range."
          />
          {anyData && !balloon && (
            <p className="px-1 text-xs text-slate-500" data-testid="no-balloon">
              No balloon driver in the guest (virtio_balloon with stats): only QEMU&apos;s resident memory is known, not what the guest itself uses.
            </p>
          )}
        </div>
        <MetricChart {...common} testId="chart-disk" title="Disk throughput, all disks" unit="bytes/s" lines={[line(s, "diskRead", "read", COLORS.emerald), line(s, "diskWrite", "written", COLORS.rose)]} empty="No disk samples in this range." />
        <MetricChart
          {...common}
          testId="chart-disk-ops"
          title="Disk operations and time, all disks"
          unit="ops/s"
          lines={[line(s, "diskReadOps", "reads", COLORS.emerald), line(s, "diskWriteOps", "writes", COLORS.rose), line(s, "diskWait", "ms waited /s", COLORS.slate, [2, 3])]}
          empty="No disk samples in this range."
        />
        <MetricChart {...common} testId="chart-network" title="Network, as the guest sees it" unit="bytes/s" lines={[line(s, "netRx", "received", COLORS.sky), line(s, "netTx", "sent", COLORS.violet)]} empty={noNet} />
        {netCounters && (
          <MetricChart
            {...common}
            testId="chart-packets"
            title="Network packets"
            unit="packets/s"
            lines={[line(s, "netRxPackets", "received", COLORS.sky), line(s, "netTxPackets", "sent", COLORS.violet), line(s, "netDrops", "dropped", COLORS.rose)]}
          />
        )}
        <MetricChart
          {...common}
          testId="chart-pressure"
          title="Pressure (% of the time stalled)"
          unit="%"
          lines={[line(s, "psiCpu", "CPU", COLORS.indigo), line(s, "psiMemory", "memory", COLORS.amber), line(s, "psiIo", "I/O", COLORS.rose)]}
          empty={anyData ? "Pressure is unavailable: the host gives this guest no cgroup of its own (see the host page)." : "No pressure samples in this range."}
        />
      </div>
    </>
  );
}

function lastOf(s: Series, field: GuestField): number | null {
  const avg = s.fields[field]?.avg ?? [];
  for (let i = avg.length - 1; i >= 0; i--) if (avg[i] !== null && avg[i] !== undefined) return avg[i]!;
  return null;
}

const COUNTERS_MS = 5_000;

/** The running guest's counters now (per vCPU, disk and card), read again every 5 s. */
function GuestCounters({ guestId, diskNames }: { guestId: string; diskNames: Record<string, string> }) {
  const [current, setCurrent] = useState<GuestCurrent | null>(null);
  const [note, setNote] = useState<string | null>(null);
  usePolling(
    guestId,
    COUNTERS_MS,
    async (signal) => {
      const res = await fetch(`/api/v1/guests/${guestId}/metrics/current`, { cache: "no-store", signal });
      const body = (await res.json()) as GuestCurrent & { detail?: string };
      if (signal.aborted) return;
      if (res.ok) {
        setCurrent(body);
        setNote(null);
      } else if (res.status === 409) setCurrent(null); // stopped, or not sampled yet: nothing to show
      else setNote(body.detail ?? `The server answered ${res.status}.`);
    },
    (err) => setNote(err instanceof Error ? err.message : String(err)),
  );

  if (!current) return note ? <p className="text-sm text-slate-500">{note}</p> : null;
  return (
    <div className="card overflow-x-auto p-3 text-sm" data-testid="guest-counters">
      <h3 className="mb-2 font-medium text-slate-700">Counters now <span className="text-xs font-normal text-slate-500">(since the guest started)</span></h3>
      <p className="mb-2 text-slate-700">
        CPU time:{" "}
        {current.vcpuSeconds.map((s, i) => (
          <span key={i} className="mr-3 font-mono" data-testid="vcpu-seconds">
            vCPU {i} {s.toFixed(1)} s
          </span>
        ))}
        <span className="font-mono text-slate-500">QEMU {current.processSeconds.toFixed(1)} s</span>
      </p>
      <table className="w-full text-left">
        <thead className="text-xs uppercase tracking-wide text-slate-500">
          <tr>
            <th className="py-1 pr-3">Disk</th>
            <th className="py-1 pr-3">Read</th>
            <th className="py-1 pr-3">Written</th>
            <th className="py-1 pr-3">Reads</th>
            <th className="py-1 pr-3">Writes</th>
            <th className="py-1 pr-3">I/O time</th>
            <th className="py-1 pr-3">Allocated</th>
          </tr>
        </thead>
        <tbody className="font-mono">
          {current.disks.length === 0 && (
            <tr>
              <td colSpan={7} className="py-1 font-sans text-slate-500">No disks.</td>
            </tr>
          )}
          {current.disks.map((d) => (
            <tr key={d.volume} data-testid="disk-counters">
              <td className="py-1 pr-3 font-sans">{diskNames[d.volume] ?? d.volume}</td>
              <td className="py-1 pr-3">{formatBytes(d.readBytes)}</td>
              <td className="py-1 pr-3">{formatBytes(d.writeBytes)}</td>
              <td className="py-1 pr-3">{d.readOps}</td>
              <td className="py-1 pr-3">{d.writeOps}</td>
              <td className="py-1 pr-3">{(d.readSeconds + d.writeSeconds).toFixed(2)} s</td>
              <td className="py-1 pr-3">{d.allocatedBytes === null ? "–" : formatBytes(d.allocatedBytes)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <table className="mt-3 w-full text-left">
        <thead className="text-xs uppercase tracking-wide text-slate-500">
          <tr>
            <th className="py-1 pr-3">Card</th>
            <th className="py-1 pr-3">Received</th>
            <th className="py-1 pr-3">Sent</th>
            <th className="py-1 pr-3">Packets in / out</th>
            <th className="py-1 pr-3">Dropped in / out</th>
          </tr>
        </thead>
        <tbody className="font-mono">
          {current.nics.length === 0 && (
            <tr>
              <td colSpan={5} className="py-1 font-sans text-slate-500">No network cards.</td>
            </tr>
          )}
          {current.nics.map((n) => (
            <tr key={n.mac} data-testid="nic-counters">
              <td className="py-1 pr-3">{n.mac}</td>
              {n.counters ? (
                <>
                  <td className="py-1 pr-3">{formatBytes(n.counters.rxBytes)}</td>
                  <td className="py-1 pr-3">{formatBytes(n.counters.txBytes)}</td>
                  <td className="py-1 pr-3">
                    {n.counters.rxPackets} / {n.counters.txPackets}
                  </td>
                  <td className="py-1 pr-3">
                    {n.counters.rxDropped} / {n.counters.txDropped}
                  </td>
                </>
              ) : (
                <td colSpan={4} className="py-1 pr-3 font-sans text-slate-500">
                  {n.why ?? "No counters for this card."}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
