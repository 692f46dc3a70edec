"use client";

import Link from "next/link";
import type { QuotaRefusal } from "@/server/domain/types";
import { AskForMore } from "./quota-ask";
import { useRouter } from "next/navigation";
import { useEffect, useState, useTransition } from "react";
import { deleteGuest } from "@/app/actions/delete-guest";
import { powerGuest } from "@/app/actions/power-guest";
import { allowedActions, SHUTDOWN_PATIENCE_MS, type GuestState, type PowerAction } from "@/server/domain/types";
import type { ActionResult } from "@/server/web/action";

const POWER_BUTTONS: Array<{ action: PowerAction; label: string; style: string; title: string }> = [
  { action: "start", label: "Start", style: "btn-primary", title: "Start QEMU" },
  { action: "resume", label: "Resume", style: "btn-primary", title: "Continue the paused vCPUs" },
  { action: "shutdown", label: "Shut down", style: "", title: "Press the ACPI power button" },
  { action: "reboot", label: "Reboot", style: "", title: "ACPI shutdown, then start again (applies pending changes)" },
  { action: "pause", label: "Pause", style: "", title: "Stop the vCPUs; memory stays" },
  { action: "reset", label: "Reset", style: "btn-danger", title: "Hard reset, like the reset button" },
  { action: "force-off", label: "Force off", style: "btn-danger", title: "Stop QEMU at once, like pulling the plug" },
  { action: "restart", label: "Start again", style: "btn-primary", title: "Force QEMU off and start the guest afresh (applies pending changes)" },
];

/** The buttons a guest's state allows, and the error of the last one pressed. */
export function GuestActions(props: {
  guestId: string;
  guestName: string;
  /** "template": a template offers only delete. */
  state: GuestState | "template" | null;
  since: number;
  diskNames: string[];
}) {
  const { guestId, guestName, state, since, diskNames } = props;
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [quota, setQuota] = useState<QuotaRefusal | null>(null);
  const [pending, startTransition] = useTransition();
  const [confirmingDelete, setConfirmingDelete] = useState(false);
  const [deleteDisks, setDeleteDisks] = useState(true);
  const allowed = state === "template" ? (["delete"] as const) : state ? allowedActions(state) : [];
  const impatient = useElapsed(state === "shutting-down" ? since : null, SHUTDOWN_PATIENCE_MS);

  function run(action: () => Promise<ActionResult<unknown>>, after?: () => void) {
    setError(null);
    startTransition(async () => {
      const result = await action();
      setQuota(result.ok ? null : (result.quota ?? null));
      if (!result.ok) setError(result.error);
      else if (after) after();
      else router.refresh();
    });
  }

  return (
    <div className="flex flex-col items-end gap-2">
      <div className="flex flex-wrap justify-end gap-2">
        {allowed.includes("console") && (
          <Link href={`/guests/${guestId}/console`} className="btn btn-primary">
            Console
          </Link>
        )}
        {POWER_BUTTONS.filter((b) => allowed.includes(b.action)).map((b) => (
          <button
            key={b.action}
            className={`btn ${b.style}`}
            title={b.title}
            disabled={pending}
            onClick={() => run(() => powerGuest(guestId, b.action))}
          >
            {b.label}
          </button>
        ))}
        {allowed.includes("start") && (
          <button
            className="btn"
            title="Start and show the firmware's boot menu (press Esc or F12 in the console); only this once"
            disabled={pending}
            onClick={() => run(() => powerGuest(guestId, "start", { bootMenu: true }), () => router.push(`/guests/${guestId}/console`))}
          >
            Start with boot menu
          </button>
        )}
        {allowed.includes("delete") && (
          <button className="btn btn-danger" disabled={pending} onClick={() => setConfirmingDelete(true)}>
            Delete
          </button>
        )}
      </div>
      {impatient && (
        <p data-testid="shutdown-stuck" className="max-w-md rounded-md bg-amber-50 p-2 text-sm text-amber-900">
          {guestName} has not powered off after {SHUTDOWN_PATIENCE_MS / 1000} s. The guest may ignore the ACPI power
          button: use Force off to stop it now.
        </p>
      )}
      {confirmingDelete && (
        <div role="dialog" aria-label={`Delete ${guestName}`} className="card max-w-md space-y-3 p-4 text-sm">
          <p className="font-medium">Delete guest {guestName}? This cannot be undone.</p>
          {diskNames.length > 0 && (
            <label className="flex items-start gap-2">
              <input type="checkbox" checked={deleteDisks} onChange={(e) => setDeleteDisks(e.target.checked)} className="mt-1" />
              <span>
                Also delete its disks: {diskNames.join(", ")}.
                {!deleteDisks && " They stay on the host, detached."}
              </span>
            </label>
          )}
          <div className="flex justify-end gap-2">
            <button className="btn" onClick={() => setConfirmingDelete(false)}>
              Cancel
            </button>
            <button
              className="btn btn-danger"
              disabled={pending}
              onClick={() => run(() => deleteGuest(guestId, deleteDisks), () => router.push("/"))}
            >
              Delete {guestName}
            </button>
          </div>
        </div>
      )}
      {pending && <p className="text-xs text-slate-500">Working…</p>}
      {error && (
        <p role="alert" data-testid="action-error" className="max-w-md rounded-md bg-red-50 p-2 text-sm text-red-800">
          {error}
          <AskForMore quota={quota} />
        </p>
      )}
    </div>
  );
}

/** True once `limitMs` have passed since `since` (null: never). */
function useElapsed(since: number | null, limitMs: number): boolean {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (since === null) return;
    const left = since + limitMs - Date.now();
    if (left <= 0) return;
    const timer = setTimeout(() => setNow(Date.now()), left + 50);
    return () => clearTimeout(timer);
  }, [since, limitMs]);
  return since !== null && since > 0 && now - since >= limitMs;
}
