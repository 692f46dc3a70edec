"use client";

import { useRouter } from "next/navigation";
import { handOver } from "@/app/actions/hand-over";
import { ErrorLine } from "./action-button";
import { useFormAction } from "./use-form-action";

/** Hands a guest (with its disks), a free disk or an uploaded ISO to someone, in its team or one the user owns. */
export function HandOverForm({ kind, id, teams, currentTeam }: { kind: "guest" | "disk" | "iso"; id: string; teams: Array<{ id: string; name: string }>; currentTeam: string }) {
  const router = useRouter();
  const { onSubmit, error, pending } = useFormAction((form) => handOver(kind, id, form.get("username"), form.get("team")), () => router.refresh());
  return (
    <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label={`Hand this ${kind === "iso" ? "ISO" : kind} over`}>
      <input name="username" className="field w-40!" required maxLength={64} placeholder="user name" aria-label="New owner" />
      <select name="team" defaultValue={currentTeam} className="field w-40!" aria-label="Their team">
        {teams.map((t) => (
          <option key={t.id} value={t.id}>
            {t.name}
          </option>
        ))}
      </select>
      <button className="btn" disabled={pending}>
        {pending ? "Handing over…" : "Hand over"}
      </button>
      <ErrorLine error={error} testId="hand-over-error" />
    </form>
  );
}
