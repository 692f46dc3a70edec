/**
 * The CLI's metrics: "top consumers" (GET /metrics/top) and one guest's figures over a range
 * (GET /guests/{id}/metrics), as tables for people or the API's JSON for scripts. The CLI
 * stays free of the server's modules (it is bundled on its own); FIELDS, RANGES and
 * TOP_WINDOWS repeat the API's names, and a unit test holds them to the domain's.
 */
import { UsageError } from "./errors";
import { bytes } from "./output";

type Unit = "%" | "bytes" | "bytes/s" | "ops/s" | "ms/s" | "packets/s";

/** Every field of a guest's samples, in the API's order: how it is called here and its unit. */
export const FIELDS: Record<string, { label: string; unit: Unit }> = {
  cpu: { label: "CPU (of its vCPUs)", unit: "%" },
  hostCpu: { label: "QEMU's CPU (of the host)", unit: "%" },
  rss: { label: "memory held by QEMU", unit: "bytes" },
  memTotal: { label: "memory, guest's total", unit: "bytes" },
  memAvailable: { label: "memory, guest's available", unit: "bytes" },
  diskRead: { label: "disk read", unit: "bytes/s" },
  diskWrite: { label: "disk written", unit: "bytes/s" },
  diskReadOps: { label: "disk reads", unit: "ops/s" },
  diskWriteOps: { label: "disk writes", unit: "ops/s" },
  diskWait: { label: "disk wait", unit: "ms/s" },
  netRx: { label: "network in", unit: "bytes/s" },
  netTx: { label: "network out", unit: "bytes/s" },
  netRxPackets: { label: "packets in", unit: "packets/s" },
  netTxPackets: { label: "packets out", unit: "packets/s" },
  netDrops: { label: "packets dropped", unit: "packets/s" },
  psiCpu: { label: "pressure, CPU", unit: "%" },
  psiMemory: { label: "pressure, memory", unit: "%" },
  psiIo: { label: "pressure, I/O", unit: "%" },
};
export const RANGES = ["hour", "day", "week", "month", "year"] as const;
export const TOP_WINDOWS = ["now", "hour", "day"] as const;

type Figures = Record<string, number | null>;
export interface TopConsumers {
  sort: string;
  window: string;
  items: Array<{ id: string; name: string; team: { name: string }; host: { name: string }; running: boolean; figures: Figures }>;
}
export interface Series {
  resolution: number;
  t: number[];
  fields: Record<string, { min: Array<number | null>; avg: Array<number | null>; max: Array<number | null> }>;
}

/** A value in its unit as a person reads it; "-" for none. */
export function formatValue(unit: Unit, value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "-";
  // Three significant figures or so, trailing zeros after the point dropped (100 stays 100).
  const n = (v: number) => (v >= 100 ? v.toFixed(0) : (v >= 10 ? v.toFixed(1) : v.toFixed(2)).replace(/\.?0+$/, "") || "0");
  switch (unit) {
    case "%":
      return `${n(value)} %`;
    case "bytes":
      return bytes(Math.max(0, Math.round(value)));
    case "bytes/s":
      return `${bytes(Math.max(0, Math.round(value)))}/s`;
    case "ops/s":
      return `${n(value)} ops/s`;
    case "packets/s":
      return `${n(value)} pkt/s`;
    case "ms/s":
      return `${n(value)} ms/s`;
  }
}

/** The query of `guesthouse top`, its options checked here so a typo is named before any request. */
export function topQuery(sort: string | undefined, window: string | undefined): string {
  if (sort !== undefined && !Object.hasOwn(FIELDS, sort)) throw new UsageError(`--sort is one of ${Object.keys(FIELDS).join(", ")}.`);
  if (window !== undefined && !(TOP_WINDOWS as readonly string[]).includes(window)) throw new UsageError(`--window is one of ${TOP_WINDOWS.join(", ")}.`);
  return `/metrics/top?sort=${sort ?? "cpu"}&window=${window ?? "now"}`;
}

/** `guesthouse metrics`' --range (hour unless given), checked as topQuery's options are. */
export function rangeOf(given: string | undefined): string {
  if (given !== undefined && !(RANGES as readonly string[]).includes(given)) throw new UsageError(`--range is one of ${RANGES.join(", ")}.`);
  return given ?? "hour";
}

/** Top consumers as a table: the sorted-by field first among the figures, unknowns as "-". */
export function topTable(top: TopConsumers): { headers: string[]; rows: string[][] } {
  const shown = [...new Set([top.sort, "cpu", "rss", "diskRead", "diskWrite", "netRx", "netTx"])];
  return {
    headers: ["name", "team", "host", ...shown.map((f) => FIELDS[f]?.label ?? f), "id"],
    rows: top.items.map((g) => [g.running ? g.name : `${g.name} (stopped)`, g.team.name, g.host.name, ...shown.map((f) => formatValue(FIELDS[f]?.unit ?? "%", g.figures[f])), g.id]),
  };
}

/** A guest's series as one row a field (those with any value): the newest point, and the range's min, average and max. */
export function seriesTable(series: Series): { headers: string[]; rows: string[][] } {
  const rows: string[][] = [];
  for (const [field, { label, unit }] of Object.entries(FIELDS)) {
    const s = series.fields[field];
    if (!s) continue;
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    let count = 0;
    let last: number | null = null;
    s.avg.forEach((a, i) => {
      if (a === null) return;
      min = Math.min(min, s.min[i] ?? a);
      max = Math.max(max, s.max[i] ?? a);
      sum += a;
      count++;
      last = a;
    });
    if (count === 0) continue;
    rows.push([label, formatValue(unit, last), formatValue(unit, min), formatValue(unit, sum / count), formatValue(unit, max)]);
  }
  return { headers: ["field", "latest", "min", "average", "max"], rows };
}
