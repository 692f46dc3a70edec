"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import { switchTeam } from "@/app/actions/switch-team";

/** The header's team: the one this session works in, switched among the user's teams. */
export function TeamSwitcher({ teams, current }: { teams: Array<{ id: string; name: string; role: string }>; current: string }) {
  const router = useRouter();
  const [pending, startTransition] = useTransition();
  const [error, setError] = useState<string | null>(null);
  if (teams.length === 0) return null;
  return (
    <label className="flex items-center gap-1 text-slate-300" title={error ?? "The team you work in: new guests and disks go to it"}>
      <span className="sr-only">Team</span>
      <select
        data-testid="team-switcher"
        className="rounded border border-slate-600 bg-slate-800 px-1 py-0.5 text-slate-100"
        value={current}
        disabled={pending || teams.length < 2}
        onChange={(e) => {
          const teamId = e.target.value;
          startTransition(async () => {
            const result = await switchTeam(teamId);
            setError(result.ok ? null : result.error);
            router.refresh();
          });
        }}
      >
        {teams.map((t) => (
          <option key={t.id} value={t.id}>
            {t.name} ({t.role})
          </option>
        ))}
      </select>
    </label>
  );
}
