"use client";

import { useRouter } from "next/navigation";
import { useActionState, useState, useTransition } from "react";
import {
  acceptInvite,
  changeOwnPassword,
  disableUser,
  endSession,
  inviteToTeam,
  makeAccount,
  makeAdmin,
  removeUser,
  resetTotp,
  resetUserPassword,
  revokeInvitation,
  type InviteState,
} from "@/app/actions/people";
import { TEAM_ROLES } from "@/server/auth/policy";
import { CopyButton } from "./copy-button";
import { ActionButton, ErrorLine, SubmitRow } from "./action-button";
import { useFormAction } from "./use-form-action";


function RoleSelect({ label }: { label: string }) {
  return (
    <select name="role" className="field w-32!" defaultValue="member" aria-label={label}>
      {TEAM_ROLES.map((r) => (
        <option key={r} value={r}>
          {r}
        </option>
      ))}
    </select>
  );
}

/** A single-use invitation link into the team; the link is shown once, to copy. */
export function InviteForm({ teamId }: { teamId: string }) {
  const router = useRouter();
  const [link, setLink] = useState<string | null>(null);
  const { onSubmit, error, pending } = useFormAction(
    (form) => inviteToTeam(teamId, form.get("role"), form.get("hours")),
    (made) => {
      setLink(`${window.location.origin}/invite/${made.token}`);
      router.refresh();
    },
  );
  return (
    <div className="space-y-2">
      <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label="Invite someone">
        <RoleSelect label="Invitation's role" />
        <label className="flex items-center gap-1 text-sm text-slate-600">
          for
          <input name="hours" type="number" min={1} max={720} defaultValue={72} className="field w-20!" />
          hours
        </label>
        <button className="btn" disabled={pending}>
          {pending ? "Making…" : "Make an invitation link"}
        </button>
      </form>
      {link && (
        <div className="flex items-center gap-2 rounded bg-emerald-50 p-2 text-sm">
          <input readOnly value={link} className="field flex-1 font-mono text-xs" data-testid="invite-link" />
          <CopyButton text={link} />
          <span className="text-slate-600">Shown once; it works for one person.</span>
        </div>
      )}
      <ErrorLine error={error} testId="invite-error" />
    </div>
  );
}

/** An account with a one-time password, shown once. */
export function NewAccountForm({ teamId }: { teamId: string }) {
  const router = useRouter();
  const [made, setMade] = useState<{ name: string; password: string } | null>(null);
  const { onSubmit, error, pending } = useFormAction(
    async (form) => {
      const result = await makeAccount(form.get("username"), teamId, form.get("role"));
      return result.ok ? { ok: true as const, data: { name: String(form.get("username")), password: result.data.password } } : result;
    },
    (data) => {
      setMade(data);
      router.refresh();
    },
  );
  return (
    <div className="space-y-2">
      <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label="Make an account">
        <input name="username" className="field w-40!" required maxLength={64} placeholder="new user name" aria-label="New account's user name" />
        <RoleSelect label="New account's role" />
        <button className="btn" disabled={pending}>
          {pending ? "Making…" : "Make an account"}
        </button>
      </form>
      {made && (
        <p className="rounded bg-emerald-50 p-2 text-sm" data-testid="one-time-password">
          {made.name}&apos;s one-time password: <code className="font-mono">{made.password}</code> <CopyButton text={made.password} /> (shown once; they choose their own at their first login)
        </p>
      )}
      <ErrorLine error={error} testId="account-error" />
    </div>
  );
}


export function RevokeInviteButton({ inviteId }: { inviteId: string }) {
  return <ActionButton label="Revoke" danger testId="revoke-invite-error" run={() => revokeInvitation(inviteId)} />;
}

export function EndSessionButton({ sessionId, current }: { sessionId: string; current: boolean }) {
  return <ActionButton label={current ? "Log out here" : "End"} testId="end-session-error" run={() => endSession(sessionId)} />;
}

/** An admin's buttons for one user: disable or enable, admin or not, delete (handing things to someone). */
export function UserActions({ user, heirs }: { user: { id: string; username: string; disabled: boolean; admin: boolean; totp: boolean; sso: boolean }; heirs: Array<{ id: string; username: string }> }) {
  const router = useRouter();
  const [heir, setHeir] = useState(heirs[0]?.id ?? "");
  const [oneTime, setOneTime] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [pending, startTransition] = useTransition();
  return (
    <span className="flex flex-wrap items-center justify-end gap-2">
      <ActionButton label={user.disabled ? "Enable" : "Disable"} testId="disable-error" run={() => disableUser(user.id, !user.disabled)} />
      <ActionButton label={user.admin ? "Take admin" : "Make admin"} testId="admin-error" run={() => makeAdmin(user.id, !user.admin)} />
      {!user.sso && (
        <ActionButton
          label="Reset password"
          testId="password-reset-error"
          question={() => `Give ${user.username} a new one-time password? Their sessions end; they choose their own at the next login.`}
          run={() => resetUserPassword(user.id)}
          onDone={(d) => setOneTime(d.password)}
        />
      )}
      {oneTime && (
        <span className="rounded bg-emerald-50 p-1 text-sm" data-testid="reset-password">
          one-time password: <code>{oneTime}</code> (shown once)
        </span>
      )}
      {user.totp && (
        <ActionButton
          label="Reset two-factor"
          testId="totp-reset-error"
          question={() => `Reset ${user.username}'s two-factor login (a lost phone)? Their sessions end; they log in with their password and set it up again.`}
          run={() => resetTotp(user.id)}
        />
      )}
      <select className="field w-32!" value={heir} onChange={(e) => setHeir(e.target.value)} aria-label={`Hand ${user.username}'s guests and disks to`}>
        {heirs.map((h) => (
          <option key={h.id} value={h.id}>
            to {h.username}
          </option>
        ))}
      </select>
      <button
        type="button"
        className="btn btn-danger"
        disabled={pending || !heir}
        onClick={() =>
          confirm(`Delete ${user.username}? Their guests, disks and networks go to the user chosen beside it.`) &&
          startTransition(async () => {
            const result = await removeUser(user.id, heir);
            setError(result.ok ? null : result.error);
            router.refresh();
          })
        }
      >
        Delete
      </button>
      <ErrorLine error={error} testId="delete-user-error" />
    </span>
  );
}

/** The user's new password: the current one required. */
export function ChangePasswordForm() {
  const router = useRouter();
  const [done, setDone] = useState(false);
  const { onSubmit, error, pending } = useFormAction(
    (form) => {
      if (form.get("next") !== form.get("again")) return Promise.resolve({ ok: false as const, code: "invalid-input" as const, error: "The new password and its repetition differ." });
      return changeOwnPassword(form.get("current"), form.get("next"));
    },
    () => {
      setDone(true);
      router.push("/");
    },
  );
  return (
    <form onSubmit={onSubmit} className="space-y-3" aria-label="Change your password">
      <label className="label">
        Current password
        <input name="current" type="password" autoComplete="current-password" required className="field" />
      </label>
      <label className="label">
        New password (at least 10 characters)
        <input name="next" type="password" autoComplete="new-password" required minLength={10} className="field" />
      </label>
      <label className="label">
        New password again
        <input name="again" type="password" autoComplete="new-password" required className="field" />
      </label>
      <button className="btn btn-primary" disabled={pending}>
        {pending ? "Changing…" : "Change password"}
      </button>
      {done && <p className="text-sm text-emerald-700">Changed; your other sessions have ended.</p>}
      <ErrorLine error={error} testId="password-error" />
    </form>
  );
}

/** The invitation page's form: a user name and a password, then in. */
export function AcceptInviteForm({ token }: { token: string }) {
  const [state, action, pending] = useActionState<InviteState, FormData>(acceptInvite.bind(null, token), { error: null, username: "" });
  return (
    <form action={action} className="card space-y-4 p-6">
      <label className="label">
        Choose a user name
        <input name="username" autoComplete="username" defaultValue={state.username} required maxLength={64} className="field" />
      </label>
      <label className="label">
        Choose a password (at least 10 characters)
        <input name="password" type="password" autoComplete="new-password" required minLength={10} className="field" />
      </label>
      <SubmitRow error={state.error} pending={pending} label="Join" busy="Making your account…" />
    </form>
  );
}
