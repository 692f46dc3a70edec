import Link from "next/link";
import { formatMetric, type MetricUnit } from "@/components/metric-units";
import { formatBytes } from "@/server/domain/format";
import { GUEST_FIELDS, type GuestField } from "@/server/domain/metrics";
import { TOP_WINDOWS, topConsumers, type TopWindow } from "@/server/web/metrics/views";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** The columns shown, each sortable: its heading and unit. */
const COLUMNS: Array<{ field: GuestField; heading: string; unit: MetricUnit }> = [
  { field: "cpu", heading: "CPU", unit: "%" },
  { field: "hostCpu", heading: "Host CPU", unit: "%" },
  { field: "rss", heading: "Memory", unit: "bytes" },
  { field: "diskRead", heading: "Disk read", unit: "bytes/s" },
  { field: "diskWrite", heading: "Disk write", unit: "bytes/s" },
  { field: "diskReadOps", heading: "Reads", unit: "ops/s" },
  { field: "diskWriteOps", heading: "Writes", unit: "ops/s" },
  { field: "netRx", heading: "Net in", unit: "bytes/s" },
  { field: "netTx", heading: "Net out", unit: "bytes/s" },
  { field: "psiCpu", heading: "CPU stall", unit: "%" },
  { field: "psiMemory", heading: "Mem stall", unit: "%" },
  { field: "psiIo", heading: "I/O stall", unit: "%" },
];
/** Every field's words, for the "sort by" choice (the columns' and the rest). */
const FIELD_WORDS: Record<GuestField, string> = {
  cpu: "CPU (% of its vCPUs)",
  hostCpu: "QEMU's CPU (% of the host)",
  rss: "QEMU's resident memory",
  memTotal: "guest memory total (balloon)",
  memAvailable: "guest memory available (balloon)",
  diskRead: "disk read, bytes/s",
  diskWrite: "disk write, bytes/s",
  diskReadOps: "disk reads/s",
  diskWriteOps: "disk writes/s",
  diskWait: "disk time, ms/s",
  netRx: "network in, bytes/s",
  netTx: "network out, bytes/s",
  netRxPackets: "packets in/s",
  netTxPackets: "packets out/s",
  netDrops: "packets dropped/s",
  psiCpu: "CPU pressure",
  psiMemory: "memory pressure",
  psiIo: "I/O pressure",
};
const UNITS: Partial<Record<GuestField, MetricUnit>> = { memTotal: "bytes", memAvailable: "bytes", diskWait: "ms/s", netRxPackets: "packets/s", netTxPackets: "packets/s", netDrops: "packets/s" };
const WINDOW_WORDS: Record<TopWindow, string> = { now: "Now", hour: "Last hour", day: "Last day" };

const pick = <T extends string>(value: string | string[] | undefined, allowed: readonly T[], fallback: T): T => (typeof value === "string" && (allowed as readonly string[]).includes(value) ? (value as T) : fallback);

/**
 * Top consumers: every guest the user may see (their teams', all for an admin), ranked by
 * one metric now or on average over the last hour or day, highest first: which guest is
 * eating the host, and since when. Stopped guests come last, without figures for "now".
 */
export default async function TopPage({ searchParams }: { searchParams: Promise<{ sort?: string | string[]; window?: string | string[] }> }) {
  const user = await requireUser();
  const query = await searchParams;
  const sort = pick(query.sort, GUEST_FIELDS, "cpu");
  const window = pick(query.window, Object.keys(TOP_WINDOWS) as TopWindow[], "now");
  const rows = await topConsumers(user, sort, window);
  const href = (s: GuestField, w: TopWindow) => `/top?sort=${s}&window=${w}`;
  const unitOf = (f: GuestField) => COLUMNS.find((c) => c.field === f)?.unit ?? UNITS[f] ?? "count";
  const extra = COLUMNS.some((c) => c.field === sort) ? null : sort;

  return (
    <div className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-3">
        <h1 className="text-2xl font-semibold">Top consumers</h1>
        <nav aria-label="Window" className="inline-flex overflow-hidden rounded-md border border-slate-300 text-sm shadow-sm">
          {(Object.keys(TOP_WINDOWS) as TopWindow[]).map((w) => (
            <Link
              key={w}
              href={href(sort, w)}
              data-testid={`window-${w}`}
              aria-current={w === window ? "page" : undefined}
              className={`border-l border-slate-300 px-3 py-1 first:border-l-0 ${w === window ? "bg-indigo-600 text-white" : "bg-white text-slate-700 hover:bg-slate-100"}`}
            >
              {WINDOW_WORDS[w]}
            </Link>
          ))}
        </nav>
      </div>
      <form method="get" action="/top" className="flex flex-wrap items-center gap-2 text-sm">
        <input type="hidden" name="window" value={window} />
        <label htmlFor="sort" className="text-slate-600">
          Ranked by
        </label>
        <select key={sort} id="sort" name="sort" defaultValue={sort} className="rounded-md border border-slate-300 bg-white px-2 py-1">
          {GUEST_FIELDS.map((f) => (
            <option key={f} value={f}>
              {FIELD_WORDS[f]}
            </option>
          ))}
        </select>
        <button className="btn">Rank</button>
        <span className="text-slate-500">{window === "now" ? "the latest sample of each running guest" : `the average over the ${window}; the peak is in each figure's tooltip`}</span>
      </form>
      {rows.length === 0 ? (
        <p className="card p-6 text-center text-slate-600">There are no guests you may see.</p>
      ) : (
        <div className="card overflow-x-auto">
          <table className="w-full text-left text-xs" data-testid="top-table" data-sort={sort} data-window={window}>
            <thead className="bg-slate-100 uppercase tracking-wide text-slate-600">
              <tr>
                <th className="px-3 py-2">Guest</th>
                <th className="px-3 py-2">Team</th>
                <th className="px-3 py-2">Host</th>
                {[...COLUMNS, ...(extra ? [{ field: extra, heading: FIELD_WORDS[extra], unit: unitOf(extra) }] : [])].map((c) => (
                  <th key={c.field} className="whitespace-nowrap px-3 py-2 text-right" aria-sort={c.field === sort ? "descending" : undefined}>
                    <Link href={href(c.field, window)} data-testid={`sort-${c.field}`} className={c.field === sort ? "text-indigo-700" : "hover:text-slate-900"} title={FIELD_WORDS[c.field]}>
                      {c.heading}
                      {c.field === sort && " ↓"}
                    </Link>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {rows.map((r) => (
                <tr key={r.id} data-testid="top-row" data-guest={r.name} data-running={r.running} className={r.running ? "" : "text-slate-400"}>
                  <td className="whitespace-nowrap px-3 py-1.5 text-sm">
                    <Link href={`/guests/${r.id}`} className="font-medium text-indigo-700 hover:underline">
                      {r.name}
                    </Link>
                    {!r.running && <span className="ml-1 text-xs">(stopped)</span>}
                    <div className="text-xs text-slate-500">
                      {r.vcpus} vCPU{r.vcpus === 1 ? "" : "s"}, {formatBytes(r.memory)}
                    </div>
                  </td>
                  <td className="px-3 py-1.5">{r.team.name}</td>
                  <td className="px-3 py-1.5">{r.host.name}</td>
                  {[...COLUMNS.map((c) => c.field), ...(extra ? [extra] : [])].map((f) => (
                    <td
                      key={f}
                      data-testid={`top-${f}`}
                      className={`whitespace-nowrap px-3 py-1.5 text-right font-mono ${f === sort ? "font-semibold text-slate-900" : ""}`}
                      title={window !== "now" && r.peaks[f] !== null ? `peak ${formatMetric(unitOf(f), r.peaks[f])}` : undefined}
                    >
                      {formatMetric(unitOf(f), r.figures[f])}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
