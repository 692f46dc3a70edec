"use client";

import { useState } from "react";
import type { HostField, MetricRange } from "@/server/domain/metrics";
import { MetricChart } from "./metric-chart";
import { RangeButtons, useMetricHistory } from "./metric-panels";
import { COLORS, lineOf } from "./metric-units";

const line = lineOf<HostField>;

/** The host page's graphs over a range: CPU, memory, load, running guests, and what they were given against what there is (overcommit). */
export function HostMetrics({ hostId, cores }: { hostId: string; cores: number | null }) {
  const [range, setRange] = useState<MetricRange>("hour");
  const { series: s, error, loading } = useMetricHistory<HostField>(`/api/v1/hosts/${hostId}/metrics`, range, null);
  const band = (s?.resolution ?? 10) > 10;
  const common = s ? { t: s.t, resolution: s.resolution, from: s.from, to: s.to, band } : null;
  return (
    <section className="space-y-3" aria-label="Host metrics" data-testid="host-metrics">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 className="text-lg font-semibold">Over time</h2>
        <RangeButtons range={range} onChange={setRange} live={false} />
      </div>
      {error && <p className="card border-red-200 bg-red-50 p-3 text-sm text-red-800">{error}</p>}
      {!s || !common ? (
        <p className="card p-6 text-center text-sm text-slate-500">{loading ? "Loading the history…" : "No history."}</p>
      ) : (
        <div className="grid gap-3 lg:grid-cols-2">
          <MetricChart {...common} testId="host-chart-cpu" title="CPU (% of all cores)" unit="%" yMax={100} lines={[line(s, "cpu", "busy", COLORS.indigo)]} />
          <MetricChart {...common} testId="host-chart-memory" title="Memory" unit="bytes" lines={[line(s, "memUsed", "in use", COLORS.indigo), line(s, "memTotal", "total", COLORS.slate, [4, 4]), line(s, "memAllocated", "given to guests", COLORS.amber)]} />
          <MetricChart
            {...common}
            testId="host-chart-load"
            title="Load (1 min)"
            unit="count"
            lines={[line(s, "load1", "load", COLORS.indigo)]}
            levels={cores ? [{ label: `${cores} cores`, value: cores, color: COLORS.slate }] : []}
          />
          <MetricChart
            {...common}
            testId="host-chart-guests"
            title="Running guests and their vCPUs"
            unit="count"
            lines={[line(s, "guests", "guests", COLORS.emerald), line(s, "vcpus", "vCPUs", COLORS.amber)]}
            levels={cores ? [{ label: `${cores} cores`, value: cores, color: COLORS.slate }] : []}
          />
        </div>
      )}
    </section>
  );
}
