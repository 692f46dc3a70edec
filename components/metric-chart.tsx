"use client";

import "uplot/dist/uPlot.min.css";
import type uPlot from "uplot";
import { useEffect, useMemo, useRef, useState } from "react";
import { BYTE_STEPS, chartColumns, formatMetric, formatTick, lastValue, type ChartLine, type MetricUnit } from "./metric-units";

const HEIGHT = 170;
const AXIS = "#64748b"; // slate-500
const GRID = "#e2e8f0"; // slate-200

/** A colour with an alpha, for a line's min–max band. */
const faint = (color: string) => (color.startsWith("#") && color.length === 7 ? `${color}2e` : color);

export interface MetricChartProps {
  title: string;
  unit: MetricUnit;
  /** Each point's bucket start, seconds since the epoch. */
  t: readonly number[];
  /** Seconds per point: lines break where points are further apart. */
  resolution: number;
  /** The range asked for, seconds since the epoch: the x axis ends at `to` and starts at `from` or the first point. */
  from?: number;
  to?: number;
  lines: readonly ChartLine[];
  /** Draw each line's min–max band (coarser points, where the average hides peaks). */
  band?: boolean;
  /** The y axis' top at least (100 for a CPU %); it grows past it with the data. */
  yMax?: number;
  /** Levels drawn across the whole graph, dashed and named (the configured memory, the host's cores). */
  levels?: ReadonlyArray<{ label: string; value: number; color: string }>;
  /** Said instead of a graph when no line has any value (no balloon driver, no counters…). */
  empty?: string;
  /** The headline figure: the first line's latest value unless given. */
  figure?: string;
  testId?: string;
}

/**
 * One metric graph: each line its average, with its min–max band when `band`, a time
 * axis and a y axis in the unit's words, the values under the cursor in the legend.
 * uPlot draws on a canvas and touches `window` when it loads, so it is imported in the
 * browser only (an effect), as noVNC is; the chart is made once per set of lines and fed
 * new columns with setData, and follows its container's width.
 */
export function MetricChart({ title, unit, t, resolution, from, to, lines, band = false, yMax, levels = [], empty, figure, testId }: MetricChartProps) {
  const holder = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  const data = useMemo(() => chartColumns(t, resolution, lines, band), [t, resolution, lines, band]);
  const dataRef = useRef(data);
  dataRef.current = data;
  // Read by the x scale at each redraw: from the range's start or the first point, whichever
  // is later (a guest started a minute ago fills its graph, not a sliver of the hour), to its
  // end (now: a live range moves with its newest point); ten points wide at least.
  const span = useRef<{ from?: number; to?: number }>({});
  span.current = from !== undefined && to !== undefined ? { from: Math.min(Math.max(from, t[0] ?? from), to - 10 * resolution), to } : {};
  const levelsRef = useRef(levels);
  levelsRef.current = levels;
  const levelKey = levels.map((l) => `${l.label}=${l.value}`).join("|");
  /** The reader dragged a stretch to zoom in: new points keep that view until a double click. */
  const zoomed = useRef(false);
  const anything = data.slice(1).some((column) => column.some((v) => v !== null));
  // The chart is made again only when what it draws changes, not when its data does.
  const shape = `${unit}|${band}|${yMax ?? ""}|${lines.map((l) => `${l.label}:${l.color}:${l.dash?.join(",") ?? ""}`).join("|")}`;

  useEffect(() => {
    if (!anything) return;
    let gone = false;
    let observer: ResizeObserver | null = null;
    void (async () => {
      try {
        const { default: UPlot } = await import("uplot");
        const el = holder.current;
        if (gone || !el) return;
        const series: uPlot.Series[] = [{}];
        const bands: uPlot.Band[] = [];
        /** Each line's band edges, by the line's series index: hidden and shown with it. */
        const edges = new Map<number, number[]>();
        const value = (_: uPlot, v: number | null) => formatMetric(unit, v);
        for (const line of lines) {
          const at = series.length;
          // Points are uPlot's own choice: drawn where they are few (a single point is no line).
          series.push({ label: line.label, stroke: line.color, width: 1.5, dash: line.dash, value, points: { size: 4 } });
          if (band) {
            series.push({ label: `${line.label} min`, stroke: "transparent", width: 0, class: "gh-band-edge", value, points: { show: false } });
            series.push({ label: `${line.label} max`, stroke: "transparent", width: 0, class: "gh-band-edge", value, points: { show: false } });
            bands.push({ series: [at + 2, at + 1], fill: faint(line.color) });
            edges.set(at, [at + 1, at + 2]);
          }
        }
        const opts: uPlot.Options = {
          width: Math.max(200, el.clientWidth),
          height: HEIGHT,
          series,
          bands,
          legend: { live: true },
          scales: {
            x: {
              time: true,
              range: (_u, min, max) => {
                const { from: a, to: b } = span.current;
                return a !== undefined && b !== undefined && b > a ? [a, b] : [min, max];
              },
            },
            y: { range: (_u, _min, max) => [0, Math.max(yMax ?? 0, ...levelsRef.current.map((l) => l.value * 1.08), max > 0 ? max * 1.08 : 1)] },
          },
          axes: [
            { stroke: AXIS, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 } },
            {
              stroke: AXIS,
              size: 74,
              grid: { stroke: GRID, width: 1 },
              ticks: { stroke: GRID, width: 1 },
              values: (_u, splits) => splits.map((v) => formatTick(unit, v)),
              ...(unit === "bytes" || unit === "bytes/s" ? { incrs: BYTE_STEPS } : {}),
            },
          ],
          hooks: {
            draw: [drawLevels(() => levelsRef.current)],
            setSelect: [(u) => void (u.select.width > 0 && (zoomed.current = true))],
            ready: [(u) => u.over.addEventListener("dblclick", () => void (zoomed.current = false))],
            setSeries: [
              (u, i, o) => {
                if (i === null || o.show === undefined) return;
                for (const e of edges.get(i) ?? []) if (u.series[e]?.show !== o.show) u.setSeries(e, { show: o.show });
              },
            ],
          },
        };
        plot.current?.destroy();
        zoomed.current = false;
        plot.current = new UPlot(opts, dataRef.current as uPlot.AlignedData, el);
        observer = new ResizeObserver(() => {
          const width = Math.max(200, el.clientWidth);
          if (plot.current && Math.abs(plot.current.width - width) > 1) plot.current.setSize({ width, height: HEIGHT });
        });
        observer.observe(el);
      } catch (err) {
        setFailed(err instanceof Error ? err.message : String(err));
      }
    })();
    return () => {
      gone = true;
      observer?.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // `lines`, `band`, `unit` and `yMax` are in `shape`; new data goes through setData below.
  }, [shape, anything]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData, !zoomed.current);
  }, [data]);

  // New levels: the y range and the dashed lines follow.
  useEffect(() => {
    const u = plot.current;
    if (u) u.setData(u.data, true);
  }, [levelKey]);

  const headline = figure ?? (lines[0] ? formatMetric(unit, lastValue(lines[0].avg)) : "–");
  return (
    <figure className="card min-w-0 p-3" data-testid={testId} data-points={t.length}>
      <figcaption className="flex items-baseline justify-between gap-2 text-sm">
        <span className="font-medium text-slate-700">{title}</span>
        {anything && (
          <span className="font-mono text-slate-900" data-testid={testId ? `${testId}-figure` : undefined}>
            {headline}
          </span>
        )}
      </figcaption>
      {failed ? (
        <p className="py-6 text-sm text-red-700">The graph could not be drawn: {failed}</p>
      ) : anything ? (
        <div ref={holder} className="gh-chart mt-1 w-full" style={{ minHeight: HEIGHT }} />
      ) : (
        <p className="py-6 text-center text-sm text-slate-500" data-testid={testId ? `${testId}-empty` : undefined}>
          {empty ?? "No data in this range yet."}
        </p>
      )}
    </figure>
  );
}

/** A draw hook: each level as a dashed line across the plot, its name at its right end. */
function drawLevels(levels: () => ReadonlyArray<{ label: string; value: number; color: string }>) {
  return (u: uPlot) => {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const px = window.devicePixelRatio || 1;
    for (const level of levels()) {
      const y = Math.round(u.valToPos(level.value, "y", true));
      if (!Number.isFinite(y) || y < top || y > top + height) continue;
      ctx.save();
      ctx.strokeStyle = level.color;
      ctx.fillStyle = level.color;
      ctx.lineWidth = px;
      ctx.setLineDash([4 * px, 4 * px]);
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
      ctx.font = `${11 * px}px system-ui, sans-serif`;
      ctx.textAlign = "right";
      ctx.textBaseline = "bottom";
      ctx.fillText(level.label, left + width - 4 * px, y - 2 * px);
      ctx.restore();
    }
  };
}
