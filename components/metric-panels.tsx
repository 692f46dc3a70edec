"use client";

import { useEffect, useState } from "react";
import { METRIC_RANGE_NAMES, METRIC_RANGES, type GuestSample, type MetricRange, type MetricSeries } from "@/server/domain/metrics";
import { appendSamples } from "./metric-units";

const RANGE_WORDS: Record<MetricRange, string> = { hour: "Hour", day: "Day", week: "Week", month: "Month", year: "Year" };

/** The range buttons above a set of graphs. */
export function RangeButtons({ range, onChange, live }: { range: MetricRange; onChange: (r: MetricRange) => void; live: boolean }) {
  return (
    <div className="flex flex-wrap items-center gap-2">
      <div role="group" aria-label="Range" className="inline-flex overflow-hidden rounded-md border border-slate-300 text-sm shadow-sm">
        {METRIC_RANGE_NAMES.map((r) => (
          <button
            key={r}
            type="button"
            data-testid={`range-${r}`}
            aria-pressed={r === range}
            onClick={() => onChange(r)}
            className={`border-l border-slate-300 px-3 py-1 first:border-l-0 ${r === range ? "bg-indigo-600 text-white" : "bg-white text-slate-700 hover:bg-slate-100"}`}
          >
            {RANGE_WORDS[r]}
          </button>
        ))}
      </div>
      {live ? (
        <span data-testid="metrics-live" className="inline-flex items-center gap-1 text-xs text-emerald-700">
          <span className="h-2 w-2 animate-pulse rounded-full bg-emerald-500" /> live, every second
        </span>
      ) : (
        <span className="text-xs text-slate-500">{METRIC_RANGES[range].resolution < 60 ? "10 s" : METRIC_RANGES[range].resolution < 3600 ? "1 min" : "1 h"} points{METRIC_RANGES[range].resolution > 10 ? ", min–max bands" : ""}</span>
      )}
    </div>
  );
}

/** A problem+json's words, or the status. */
async function problemOf(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { detail?: string };
    if (body.detail) return body.detail;
  } catch {
    // not JSON
  }
  return `The server answered ${res.status}.`;
}

/** How often a history is read again when nothing streams into it: the collector's pace for an hour, a minute otherwise. */
const refreshMs = (range: MetricRange) => (range === "hour" ? 10_000 : 60_000);
const LIVE_MS = 1_000;

/**
 * A history from the REST API (`<url>?range=`), read again every so often while the page
 * is visible. With `liveUrl` and the hour range, the guest's samples are fetched every
 * second from `<liveUrl>?after=<ms>` and appended (asking keeps the agent sampling the
 * guest every second); a 409 (it stopped) ends that until `liveUrl` changes again.
 */
export function useMetricHistory<F extends string>(url: string, range: MetricRange, liveUrl: string | null): { series: MetricSeries<F> | null; error: string | null; live: boolean; loading: boolean } {
  const [series, setSeries] = useState<MetricSeries<F> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const [loading, setLoading] = useState(true);

  useEffect(() => {
    let gone = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const controller = new AbortController();
    let current: MetricSeries<F> | null = null;
    let after = 0;
    let streaming = liveUrl !== null && range === "hour";
    let lastLoad = 0;
    setSeries(null);
    setLoading(true);
    setLive(streaming);

    const load = async () => {
      const res = await fetch(`${url}?range=${range}`, { cache: "no-store", signal: controller.signal });
      if (!res.ok) throw new Error(await problemOf(res));
      const fresh = (await res.json()) as MetricSeries<F>;
      if (gone) return;
      lastLoad = Date.now();
      // Live points already appended past the history's end are kept.
      const lastT = fresh.t.at(-1);
      current = fresh;
      after = Math.max(after, lastT !== undefined ? (lastT + fresh.resolution) * 1000 : Date.now() - 60_000);
      setSeries(fresh);
      setError(null);
      setLoading(false);
    };
    const poll = async () => {
      const res = await fetch(`${liveUrl}?after=${Math.floor(after)}`, { cache: "no-store", signal: controller.signal });
      if (res.status === 409) {
        streaming = false;
        setLive(false);
        return;
      }
      if (!res.ok) throw new Error(await problemOf(res));
      const { items } = (await res.json()) as { items: Array<{ at: number; sample: GuestSample }> };
      if (gone || !current || items.length === 0) return;
      current = appendSamples(current, items as Array<{ at: number; sample: Partial<Record<F, number | null>> }>, METRIC_RANGES.hour.seconds);
      after = items.at(-1)!.at;
      setSeries(current);
    };
    const tick = async () => {
      if (gone) return;
      try {
        if (!document.hidden || current === null) {
          if (current === null || (!streaming && Date.now() - lastLoad >= refreshMs(range))) await load();
          else if (streaming) await poll();
        }
      } catch (err) {
        if (gone || controller.signal.aborted) return;
        setError(err instanceof Error ? err.message : String(err));
        setLoading(false);
      }
      if (!gone) timer = setTimeout(() => void tick(), streaming ? LIVE_MS : Math.min(refreshMs(range), 5_000));
    };
    void tick();
    return () => {
      gone = true;
      controller.abort();
      if (timer) clearTimeout(timer);
    };
  }, [url, range, liveUrl]);

  return { series, error, live, loading };
}
