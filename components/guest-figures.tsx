"use client";

import { createContext, useContext, useEffect, useState } from "react";
import { usePolling } from "./use-polling";
import type { GuestFigure } from "@/server/web/metrics/figures";
import { AlertBadges } from "./metric-alerts";
import { formatMetric } from "./metric-units";

const Figures = createContext<ReadonlyMap<string, GuestFigure>>(new Map());

const EVERY_MS = 5_000;

/**
 * The guest list's live figures: one request for all the running guests the page shows
 * (`GET /api/v1/metrics/guests?ids=`, one agent call per host behind it), every 5 s while
 * the page is visible; each row's <GuestFigureCell> reads its guest's. The list itself is
 * rendered without them, as fast as before.
 */
export function GuestFiguresProvider({ ids, children }: { ids: string[]; children: React.ReactNode }) {
  const [figures, setFigures] = useState<ReadonlyMap<string, GuestFigure>>(new Map());
  const key = ids.join(",");
  useEffect(() => {
    if (!key) setFigures(new Map());
  }, [key]);
  usePolling(key || null, EVERY_MS, async (signal) => {
    const res = await fetch(`/api/v1/metrics/guests?ids=${key}`, { cache: "no-store", signal });
    if (!res.ok) return;
    const { items } = (await res.json()) as { items: GuestFigure[] };
    if (!signal.aborted) setFigures(new Map(items.map((f) => [f.id, f])));
  });
  return <Figures.Provider value={figures}>{children}</Figures.Provider>;
}

/** A running guest's CPU and memory now ("CPU 37 % · 412 MiB") and the thresholds it crosses; nothing until known. */
export function GuestFigureCell({ id }: { id: string }) {
  const f = useContext(Figures).get(id);
  if (!f) return null;
  const memory = f.guestUsed ?? f.rss;
  const memoryTitle = f.guestUsed !== null ? "in use as the guest sees it (its balloon driver)" : "QEMU's resident memory (the guest has no balloon driver)";
  return (
    <div className="mt-1 text-xs text-slate-600">
      <span data-testid="guest-figure" data-cpu={f.cpu ?? ""} className="font-mono" title={`CPU: % of its vCPUs; memory: ${memoryTitle}`}>
        CPU {formatMetric("%", f.cpu)} · {formatMetric("bytes", memory)}
      </span>
      <AlertBadges alerts={f.alerts} className="ml-1" />
    </div>
  );
}
