import type { GuestState } from "@/server/domain/types";

const STOPPED_BY_QEMU = "bg-red-50 text-red-800 ring-red-300";

const STYLES: Record<GuestState, string> = {
  stopped: "bg-slate-100 text-slate-700 ring-slate-300",
  starting: "bg-amber-50 text-amber-800 ring-amber-300",
  running: "bg-emerald-50 text-emerald-800 ring-emerald-300",
  paused: "bg-sky-50 text-sky-800 ring-sky-300",
  "shutting-down": "bg-amber-50 text-amber-800 ring-amber-300",
  crashed: STOPPED_BY_QEMU,
  "internal-error": STOPPED_BY_QEMU,
  "guest-panicked": STOPPED_BY_QEMU,
  "io-error": STOPPED_BY_QEMU,
  watchdog: STOPPED_BY_QEMU,
  "powered-off": "bg-orange-50 text-orange-800 ring-orange-300",
  halted: "bg-orange-50 text-orange-800 ring-orange-300",
};

/** Each state in a few words; the states QEMU halts a guest in say so. */
export const STATE_LABELS: Record<GuestState, string> = {
  stopped: "stopped",
  starting: "starting",
  running: "running",
  paused: "paused",
  "shutting-down": "shutting down",
  crashed: "crashed",
  "internal-error": "halted: internal error",
  "guest-panicked": "halted: guest panicked",
  "io-error": "halted: disk error",
  watchdog: "halted: watchdog",
  "powered-off": "powered off, QEMU left",
  halted: "halted by QEMU",
};

/** A guest's state; `null` means its host's agent could not be reached. */
export function StateBadge({ state }: { state: GuestState | null }) {
  const style = state ? STYLES[state] : "bg-slate-100 text-slate-500 ring-slate-300";
  return (
    <span
      data-testid="guest-state"
      data-state={state ?? "unknown"}
      className={`inline-flex whitespace-nowrap rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset ${style}`}
    >
      {state ? STATE_LABELS[state] : "unknown"}
    </span>
  );
}
