/**
 * What the metric graphs and tables need besides the chart itself, pure so that pages,
 * client components and tests share it: each unit's words, and a history's columns turned
 * into a chart's (a gap where the subject did not run, not a straight line across it).
 */
import { formatBytes } from "@/server/domain/format";
import type { MetricSeries } from "@/server/domain/metrics";

/** Line colours, from the app's palette (Tailwind's 600s). */
export const COLORS = { indigo: "#4f46e5", emerald: "#059669", amber: "#d97706", rose: "#e11d48", sky: "#0284c7", slate: "#64748b", violet: "#7c3aed" } as const;

export type MetricUnit = "%" | "bytes" | "bytes/s" | "ops/s" | "ms/s" | "packets/s" | "count";

/** A number in a few significant figures: 0.42, 4.2, 42, 420, 42k, 4.2M. */
function short(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${trim(value / 1e9)}G`;
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e4) return `${trim(value / 1e3)}k`;
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return trim(value);
  return value.toFixed(2).replace(/\.?0+$/, "") || "0";
}
const trim = (v: number) => v.toFixed(1).replace(/\.0$/, "");

/** A value as a person reads it in `unit`; "–" for none. */
export function formatMetric(unit: MetricUnit, value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  switch (unit) {
    case "%":
      return `${value >= 10 || value === 0 ? value.toFixed(0) : value.toFixed(1)} %`;
    case "bytes":
      return formatBytes(Math.max(0, value));
    case "bytes/s":
      return `${formatBytes(Math.max(0, value))}/s`;
    case "ops/s":
      return `${short(value)} ops/s`;
    case "packets/s":
      return `${short(value)} pkt/s`;
    case "ms/s":
      return `${short(value)} ms/s`;
    case "count":
      return short(value);
  }
}

/** The y axis' tick labels: shorter than formatMetric (no "/s": the graph's title says it). */
export function formatTick(unit: MetricUnit, value: number): string {
  switch (unit) {
    case "%":
      return `${short(value)} %`;
    case "bytes":
    case "bytes/s":
      return formatBytes(Math.max(0, value));
    default:
      return short(value);
  }
}

/** Tick steps for byte axes (powers of two), so labels read "256 MiB", not "244.1 MiB". */
export const BYTE_STEPS: number[] = (() => {
  const steps: number[] = [];
  for (let p = 0; p <= 5; p++) for (const m of [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]) steps.push(m * 1024 ** p);
  return [...new Set(steps)].sort((a, b) => a - b);
})();

export interface ChartLine {
  label: string;
  /** A CSS colour. */
  color: string;
  avg: ReadonlyArray<number | null>;
  /** Each point's min and max, drawn as a band around the line where given. */
  min?: ReadonlyArray<number | null>;
  max?: ReadonlyArray<number | null>;
  dash?: number[];
}

/** A line of a series' field: its averages, and its min and max (drawn as a band where the range is coarser than 10 s). */
export function lineOf<F extends string>(s: MetricSeries<F>, field: F, label: string, color: string, dash?: number[]): ChartLine {
  return { label, color, avg: s.fields[field]?.avg ?? [], min: s.fields[field]?.min, max: s.fields[field]?.max, dash };
}

/**
 * The columns uPlot draws: time first, then per line its average (and its min and max when
 * `band`), with a null point inserted wherever consecutive points are further apart than
 * 2.5 resolutions (the guest was stopped, the web down): the line breaks there. One pass
 * into preallocated columns: a year of hourly points or a week of minutes (10,080) with
 * three banded lines takes about a millisecond (10 ms the first time, before the JIT).
 */
export function chartColumns(t: readonly number[], resolution: number, lines: readonly ChartLine[], band: boolean): (number | null)[][] {
  const gap = resolution * 2.5;
  let gaps = 0;
  for (let i = 1; i < t.length; i++) if (t[i]! - t[i - 1]! > gap) gaps++;
  const n = t.length + gaps;
  const width = 1 + lines.length * (band ? 3 : 1);
  const out: (number | null)[][] = Array.from({ length: width }, () => new Array<number | null>(n));
  let j = 0;
  for (let i = 0; i < t.length; i++) {
    if (i > 0 && t[i]! - t[i - 1]! > gap) {
      out[0]![j] = t[i - 1]! + resolution;
      for (let c = 1; c < width; c++) out[c]![j] = null;
      j++;
    }
    out[0]![j] = t[i]!;
    let c = 1;
    for (const line of lines) {
      out[c++]![j] = line.avg[i] ?? null;
      if (band) {
        out[c++]![j] = (line.min ?? line.avg)[i] ?? null;
        out[c++]![j] = (line.max ?? line.avg)[i] ?? null;
      }
    }
    j++;
  }
  return out;
}

/** The last non-null value of a column, or null. */
export function lastValue(column: ReadonlyArray<number | null> | undefined): number | null {
  if (!column) return null;
  for (let i = column.length - 1; i >= 0; i--) if (column[i] !== null && column[i] !== undefined) return column[i]!;
  return null;
}

/** Whether a column has any value at all (a field its source never reported: no balloon, no counters). */
export function hasValues(column: ReadonlyArray<number | null> | undefined): boolean {
  return !!column && column.some((v) => v !== null);
}

/**
 * A history with live samples appended (each a point of its own: min = avg = max), and the
 * points older than `keepSeconds` before the newest dropped, as a new series (the old one
 * is left as it was, for React). Samples at or before the last point are ignored.
 */
export function appendSamples<F extends string>(
  series: MetricSeries<F>,
  samples: ReadonlyArray<{ at: number; sample: Partial<Record<F, number | null>> }>,
  keepSeconds: number,
): MetricSeries<F> {
  const last = series.t.at(-1) ?? -Infinity;
  const fresh = samples.filter((s) => s.at / 1000 > last);
  if (fresh.length === 0) return series;
  const newest = fresh.at(-1)!.at / 1000;
  const from = newest - keepSeconds;
  let drop = 0;
  while (drop < series.t.length && series.t[drop]! < from) drop++;
  const t = [...series.t.slice(drop), ...fresh.map((s) => s.at / 1000)];
  const fields = {} as MetricSeries<F>["fields"];
  for (const name of Object.keys(series.fields) as F[]) {
    const old = series.fields[name];
    const values = fresh.map((s) => s.sample[name] ?? null);
    fields[name] = {
      min: [...old.min.slice(drop), ...values],
      avg: [...old.avg.slice(drop), ...values],
      max: [...old.max.slice(drop), ...values],
    };
  }
  return { ...series, from: Math.max(series.from, from), to: Math.max(series.to, newest), t, fields };
}
