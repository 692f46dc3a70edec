import { isHalted, type GuestStatus, type HaltedState } from "@/server/domain/types";

/** For each state QEMU halts a guest in: what happened, in plain words, and what the person can do. */
const HALTS: Record<HaltedState | "crashed", { title: string; what: string; todo: string }> = {
  "internal-error": {
    title: "QEMU stopped this guest: the hypervisor could not run its code",
    what: "KVM reported an internal error (often an emulation failure, on hosts whose KVM is nested or incomplete) and QEMU stopped the vCPUs. The guest does nothing until you act.",
    todo: "Reset it or start it again. If it stops at the same point again, this host's KVM cannot run this guest: an admin can run the host's agent with GUESTHOUSE_ACCEL=tcg.",
  },
  "guest-panicked": {
    title: "The guest's operating system panicked",
    what: "Its kernel reported a panic and QEMU stopped the vCPUs, so the panic message stays on the screen.",
    todo: "Read it on the console, then reset the guest or start it again.",
  },
  "io-error": {
    title: "QEMU paused the guest on a disk error",
    what: "A read or write of one of its disks failed, and QEMU stopped the vCPUs rather than hand the error to the guest.",
    todo: "Free space in the disk's storage folder (or fix what failed) and resume: QEMU retries the request. Or force it off.",
  },
  watchdog: {
    title: "The guest's watchdog fired",
    what: "The guest stopped feeding its watchdog device, and QEMU paused it.",
    todo: "Look at the console, then resume, reset, or start it again.",
  },
  "powered-off": {
    title: "The guest powered off, but its QEMU is still there",
    what: "QEMU was started to stay after the guest's power-off.",
    todo: "Reset to boot it again, or force it off.",
  },
  halted: {
    title: "QEMU stopped the vCPUs without anyone here asking",
    what: "The guest was not paused from the dashboard.",
    todo: "Resume it, reset it, or start it again.",
  },
  crashed: {
    title: "QEMU stopped unexpectedly",
    what: "Its process ended without being asked to.",
    todo: "Start the guest again; the end of QEMU's log may say why it ended.",
  },
};

/**
 * Why a guest is not running although nobody stopped it: a QEMU that ended, or one that
 * halted the vCPUs itself. Shows what happened, what to do, and the end of QEMU's log;
 * nothing for any other state. `compact`: one line for the guest list.
 */
export function HaltNotice({ status, compact = false }: { status: GuestStatus | null; compact?: boolean }) {
  if (!status || !(status.state === "crashed" || isHalted(status.state))) return null;
  const halt = HALTS[status.state as HaltedState | "crashed"];
  if (compact) {
    return (
      <p data-testid="halt-notice" data-state={status.state} className="mt-1 max-w-xs text-xs text-red-800" title={`${halt.what} ${status.logTail ?? ""}`.trim()}>
        {halt.title}. {halt.todo.split(". ")[0]!.replace(/\.$/, "")}.
      </p>
    );
  }
  return (
    <section data-testid="halt-notice" data-state={status.state} role="alert" className="card space-y-2 border-red-200 p-4">
      <h2 className="font-semibold text-red-800">{halt.title}</h2>
      <p className="text-sm text-slate-700">{halt.what}</p>
      {status.haltReason && (
        <p data-testid="halt-reason" className="text-sm text-slate-700">
          QEMU said: <span className="font-mono">{status.haltReason}</span>
        </p>
      )}
      <p className="text-sm font-medium text-slate-800">{halt.todo}</p>
      <details open={status.state === "crashed" || status.state === "internal-error"}>
        <summary className="cursor-pointer text-sm text-slate-600">The end of QEMU&apos;s log</summary>
        <pre data-testid="halt-log" className="mt-2 max-h-64 overflow-auto rounded bg-slate-900 p-3 text-xs text-slate-100">{status.logTail || "(empty)"}</pre>
      </details>
    </section>
  );
}
