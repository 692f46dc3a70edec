"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import { deleteGuest } from "@/app/actions/delete-guest";
import { forceOffGuest } from "@/app/actions/force-off-guest";
import { shutdownGuest } from "@/app/actions/shutdown-guest";
import { startGuest } from "@/app/actions/start-guest";
import { allowedActions, type GuestState } from "@/server/domain/types";
import type { ActionResult } from "@/server/web/action";

/** The buttons a guest's state allows, and the error of the last one pressed. */
export function GuestActions(props: { guestId: string; guestName: string; state: GuestState | null; diskNames: string[] }) {
  const { guestId, guestName, state, diskNames } = props;
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [pending, startTransition] = useTransition();
  const allowed = state ? allowedActions(state) : [];

  function run(action: () => Promise<ActionResult<unknown>>, after?: () => void) {
    setError(null);
    startTransition(async () => {
      const result = await action();
      if (!result.ok) setError(result.error);
      else if (after) after();
      else router.refresh();
    });
  }

  function confirmDelete() {
    const disks = diskNames.length ? `\n\nIts disks will be deleted too: ${diskNames.join(", ")}.` : "";
    if (window.confirm(`Delete guest ${guestName}?${disks}\n\nThis cannot be undone.`)) {
      run(() => deleteGuest(guestId), () => router.push("/"));
    }
  }

  return (
    <div className="flex flex-col items-end gap-2">
      <div className="flex flex-wrap gap-2">
        {allowed.includes("console") && (
          <Link href={`/guests/${guestId}/console`} className="btn btn-primary">
            Console
          </Link>
        )}
        {allowed.includes("start") && (
          <button className="btn btn-primary" disabled={pending} onClick={() => run(() => startGuest(guestId))}>
            Start
          </button>
        )}
        {allowed.includes("shutdown") && (
          <button className="btn" disabled={pending} onClick={() => run(() => shutdownGuest(guestId))}>
            Shut down
          </button>
        )}
        {allowed.includes("force-off") && (
          <button className="btn btn-danger" disabled={pending} onClick={() => run(() => forceOffGuest(guestId))}>
            Force off
          </button>
        )}
        {allowed.includes("delete") && (
          <button className="btn btn-danger" disabled={pending} onClick={confirmDelete}>
            Delete
          </button>
        )}
      </div>
      {pending && <p className="text-xs text-slate-500">Working…</p>}
      {error && (
        <p role="alert" data-testid="action-error" className="max-w-md rounded-md bg-red-50 p-2 text-sm text-red-800">
          {error}
        </p>
      )}
    </div>
  );
}
