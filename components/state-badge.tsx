import type { GuestState } from "@/server/domain/types";

const STYLES: Record<GuestState, string> = {
  stopped: "bg-slate-100 text-slate-700 ring-slate-300",
  starting: "bg-amber-50 text-amber-800 ring-amber-300",
  running: "bg-emerald-50 text-emerald-800 ring-emerald-300",
  paused: "bg-sky-50 text-sky-800 ring-sky-300",
  "shutting-down": "bg-amber-50 text-amber-800 ring-amber-300",
  crashed: "bg-red-50 text-red-800 ring-red-300",
};

/** A guest's state; `null` means its host's agent could not be reached. */
export function StateBadge({ state }: { state: GuestState | null }) {
  const style = state ? STYLES[state] : "bg-slate-100 text-slate-500 ring-slate-300";
  return (
    <span data-testid="guest-state" data-state={state ?? "unknown"} className={`inline-flex rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset ${style}`}>
      {state ?? "unknown"}
    </span>
  );
}
