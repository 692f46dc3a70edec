"use client";

import { useEffect, useState } from "react";
import { CONSOLE_KIND_NAMES, viewerName, type ViewerView } from "@/server/console/types";

const POLL_MS = 4_000;

/** Who else has this guest's consoles open, asked every few seconds while the page is visible. */
export function ConsoleViewers({ guestId }: { guestId: string }) {
  const [viewers, setViewers] = useState<ViewerView[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      clearTimeout(timer);
      if (stopped) return;
      if (document.visibilityState === "visible") {
        try {
          const res = await fetch(`/guests/${guestId}/viewers`, { cache: "no-store" });
          const body = (await res.json()) as { viewers?: ViewerView[]; message?: string };
          if (!stopped) {
            if (res.ok && body.viewers) {
              setViewers(body.viewers);
              setError(null);
            } else setError(body.message ?? `The dashboard answered ${res.status}.`);
          }
        } catch {
          if (!stopped) setError("The dashboard did not answer.");
        }
      }
      if (!stopped) timer = setTimeout(() => void poll(), POLL_MS);
    };
    const onVisible = () => document.visibilityState === "visible" && void poll();
    document.addEventListener("visibilitychange", onVisible);
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [guestId]);

  return (
    <section className="card p-4" aria-labelledby="viewers-title">
      <h2 id="viewers-title" className="mb-2 font-semibold">
        Connected now
      </h2>
      {error && <p className="text-sm text-red-700">{error}</p>}
      {viewers === null ? (
        <p className="text-sm text-slate-500">…</p>
      ) : viewers.length === 0 ? (
        <p className="text-sm text-slate-500">Nobody.</p>
      ) : (
        <ul className="space-y-1 text-sm" data-testid="console-viewers">
          {viewers.map((v) => (
            <li key={v.id} data-testid="console-viewer" className="flex items-center justify-between gap-2">
              <span>
                <span className="font-medium">{viewerName(v)}</span>{" "}
                <span className="text-slate-500">
                  {CONSOLE_KIND_NAMES[v.kind]}
                  {v.viewOnly && ", view only"}
                </span>
              </span>
              <span className="text-xs text-slate-500">since {new Date(v.startedAt).toLocaleTimeString()}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
