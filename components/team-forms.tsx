"use client";

import { useRouter } from "next/navigation";
import { requireTotpInTeam } from "@/app/actions/people";
import { addTeam, changeTeamName, removeFromTeam, setTeamRole, setThresholds } from "@/app/actions/teams";
import type { Threshold, ThresholdKind } from "@/server/domain/metrics";
import { TEAM_ROLES } from "@/server/auth/policy";
import { ActionButton, ErrorLine } from "./action-button";
import { useFormAction } from "./use-form-action";


/** Makes a team (admins). */
export function NewTeamForm() {
  const router = useRouter();
  const { onSubmit, error, pending } = useFormAction((form) => addTeam(form.get("name")), () => router.refresh());
  return (
    <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label="New team">
      <label className="space-y-1">
        <span className="text-sm text-slate-600">New team</span>
        <input name="name" className="field" required maxLength={64} placeholder="Platform" />
      </label>
      <button className="btn btn-primary" disabled={pending}>
        {pending ? "Making…" : "Make team"}
      </button>
      <ErrorLine error={error} testId="team-error" />
    </form>
  );
}

/** Adds a user to a team with a role, or changes their role (owners and admins). */
export function MemberForm({ teamId }: { teamId: string }) {
  const router = useRouter();
  const { onSubmit, error, pending } = useFormAction((form) => setTeamRole(teamId, form.get("username"), form.get("role")), () => router.refresh());
  return (
    <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label="Add or change a member">
      <input name="username" className="field w-40!" required maxLength={64} placeholder="user name" aria-label="Member's user name" />
      <select name="role" className="field w-32!" defaultValue="member" aria-label="Member's role">
        {TEAM_ROLES.map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </select>
      <button className="btn" disabled={pending}>
        {pending ? "Saving…" : "Add or change"}
      </button>
      <ErrorLine error={error} testId="member-error" />
    </form>
  );
}

/** Takes a member out of the team. */
export function RemoveMemberButton({ teamId, userId, username }: { teamId: string; userId: string; username: string }) {
  return (
    <ActionButton
      danger
      label="Remove"
      testId="remove-member-error"
      question={() => `Take ${username} out of this team? Their guests and disks stay the team's.`}
      run={() => removeFromTeam(teamId, userId)}
    />
  );
}

/** Requires two-factor login of the team's members, or stops (owners and admins). */
export function RequireTotpButton({ teamId, required }: { teamId: string; required: boolean }) {
  return (
    <ActionButton
      label={required ? "Stop requiring two-factor login" : "Require two-factor login"}
      busy="Saving…"
      testId="require-totp-error"
      question={required ? undefined : () => "Members who log in with a password and have no second factor will be asked to set one up before anything else. Go on?"}
      run={() => requireTotpInTeam(teamId, !required)}
    />
  );
}

/** A team's new name (admins). */
export function RenameTeamForm({ teamId, name }: { teamId: string; name: string }) {
  const router = useRouter();
  const { onSubmit, error, pending } = useFormAction((form) => changeTeamName(teamId, form.get("name")), () => router.refresh());
  return (
    <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label={`Rename ${name}`}>
      <input name="name" className="field w-48!" required maxLength={64} defaultValue={name} aria-label="Team's new name" />
      <button className="btn" disabled={pending}>
        {pending ? "Renaming…" : "Rename"}
      </button>
      <ErrorLine error={error} testId="rename-error" />
    </form>
  );
}

/**
 * A team's thresholds: when its guests count as busy or short of memory, and its storage
 * folders as full (badges on the guest list and the host page). Owners and admins.
 */
export function ThresholdsForm({ teamId, thresholds }: { teamId: string; thresholds: Record<ThresholdKind, Threshold> }) {
  const router = useRouter();
  const { onSubmit, error, pending } = useFormAction(
    (form) =>
      setThresholds(teamId, {
        "guest-cpu": { percent: form.get("cpu-percent"), minutes: form.get("cpu-minutes") },
        "guest-memory": { percent: form.get("memory-percent"), minutes: form.get("memory-minutes") },
        "folder-space": { percent: form.get("folder-percent") },
      }),
    () => router.refresh(),
  );
  const number = (name: string, value: number, max: number, label: string) => (
    <input name={name} type="number" min={1} max={max} required defaultValue={value} className="field w-20!" aria-label={label} />
  );
  const cpu = thresholds["guest-cpu"];
  const memory = thresholds["guest-memory"];
  return (
    <form onSubmit={onSubmit} className="space-y-2 text-sm" aria-label="Thresholds">
      <p className="text-slate-600">Thresholds: badges on the guest list and the host page when</p>
      <div className="flex flex-wrap items-center gap-2">
        a guest&apos;s CPU is above {number("cpu-percent", cpu.percent, 100, "CPU threshold, %")} % for {number("cpu-minutes", cpu.minutes, 1440, "CPU threshold, minutes")} minutes;
      </div>
      <div className="flex flex-wrap items-center gap-2">
        its memory in use is above {number("memory-percent", memory.percent, 100, "Memory threshold, %")} % for{" "}
        {number("memory-minutes", memory.minutes, 1440, "Memory threshold, minutes")} minutes;
      </div>
      <div className="flex flex-wrap items-center gap-2">
        a storage folder its disks are in is fuller than {number("folder-percent", thresholds["folder-space"].percent, 100, "Storage folder threshold, %")} %.
        <button className="btn" disabled={pending}>
          {pending ? "Saving…" : "Save thresholds"}
        </button>
      </div>
      <ErrorLine error={error} testId="thresholds-error" />
    </form>
  );
}
