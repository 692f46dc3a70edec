"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { answerRequest, requestMore, setQuotaLimit } from "@/app/actions/quotas";
import { QUOTA_LABELS, QUOTA_RESOURCES, QUOTA_UNITS, type QuotaResource } from "@/server/domain/types";
import { ActionButton, ErrorLine } from "./action-button";
import { useFormAction } from "./use-form-action";

const PLACEHOLDER: Record<(typeof QUOTA_UNITS)[QuotaResource], string> = { count: "e.g. 10", mib: "e.g. 64G", bytes: "e.g. 2T" };

/** One limit of a team or a member (admins): a value with its unit, empty for none. */
export function LimitForm({ teamId, userId = "", resource, current }: { teamId: string; userId?: string; resource: QuotaResource; current: string }) {
  const router = useRouter();
  const { onSubmit, error, pending } = useFormAction((form) => setQuotaLimit(teamId, userId, resource, form.get("limit")), () => router.refresh());
  return (
    <form onSubmit={onSubmit} className="flex items-center gap-1" aria-label={`Limit of ${QUOTA_LABELS[resource]}`}>
      <input name="limit" className="field w-28!" defaultValue={current} placeholder={`${PLACEHOLDER[QUOTA_UNITS[resource]]}; empty: none`} aria-label={`Limit of ${QUOTA_LABELS[resource]}`} />
      <button className="btn" disabled={pending}>
        {pending ? "Saving…" : "Set"}
      </button>
      <ErrorLine error={error} testId="limit-error" />
    </form>
  );
}

/** A member's own limit within the team (admins). */
export function MemberLimitForm({ teamId, members }: { teamId: string; members: Array<{ id: string; username: string }> }) {
  const router = useRouter();
  const { onSubmit, error, pending } = useFormAction(
    (form) => setQuotaLimit(teamId, String(form.get("userId")), form.get("resource"), form.get("limit")),
    () => router.refresh(),
  );
  return (
    <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label="A member's own limit">
      <select name="userId" className="field w-40!" aria-label="Member">
        {members.map((m) => (
          <option key={m.id} value={m.id}>
            {m.username}
          </option>
        ))}
      </select>
      <select name="resource" className="field w-56!" aria-label="Quota">
        {QUOTA_RESOURCES.map((r) => (
          <option key={r} value={r}>
            {QUOTA_LABELS[r]}
          </option>
        ))}
      </select>
      <input name="limit" className="field w-28!" placeholder="empty: none" aria-label="Member's limit" />
      <button className="btn" disabled={pending}>
        {pending ? "Saving…" : "Set member's limit"}
      </button>
      <ErrorLine error={error} testId="member-limit-error" />
    </form>
  );
}

/** Asks an admin for more: filled in from a refusal's "Ask for more" link. */
export function AskForm({
  teams,
  initial,
}: {
  teams: Array<{ id: string; name: string }>;
  initial: { team?: string; resource?: string; scope?: string; amount?: string };
}) {
  const router = useRouter();
  const [sent, setSent] = useState(false);
  const { onSubmit, error, pending } = useFormAction(
    (form) =>
      requestMore({ teamId: form.get("teamId"), resource: form.get("resource"), scope: form.get("scope"), amount: form.get("amount"), reason: form.get("reason") }),
    () => {
      setSent(true);
      router.refresh();
    },
  );
  return (
    <form onSubmit={onSubmit} className="grid gap-2 sm:grid-cols-2" aria-label="Ask for more" id="ask">
      <label className="label">
        Team
        <select name="teamId" className="field" defaultValue={initial.team}>
          {teams.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </select>
      </label>
      <label className="label">
        Quota
        <select name="resource" className="field" defaultValue={initial.resource}>
          {QUOTA_RESOURCES.map((r) => (
            <option key={r} value={r}>
              {QUOTA_LABELS[r]}
            </option>
          ))}
        </select>
      </label>
      <label className="label">
        Whose limit
        <select name="scope" className="field" defaultValue={initial.scope === "user" ? "user" : "team"}>
          <option value="team">the team&apos;s</option>
          <option value="user">my own in the team</option>
        </select>
      </label>
      <label className="label">
        New limit
        <input name="amount" className="field" required defaultValue={initial.amount} placeholder="e.g. 16, 64G, 2T" />
      </label>
      <label className="label sm:col-span-2">
        Why
        <textarea name="reason" className="field" required minLength={3} maxLength={500} rows={2} placeholder="What it is for, and for how long" />
      </label>
      <div className="flex items-center gap-3 sm:col-span-2">
        <button className="btn btn-primary" disabled={pending}>
          {pending ? "Sending…" : "Ask an admin"}
        </button>
        {sent && !error && <span className="text-sm text-green-700" data-testid="ask-sent">Sent: the answer shows below.</span>}
        <ErrorLine error={error} testId="ask-error" />
      </div>
    </form>
  );
}

/** Approve, or decline with a note (admins). */
export function AnswerForm({ id }: { id: string }) {
  const [note, setNote] = useState("");
  return (
    <span className="flex flex-wrap items-center gap-2">
      <input className="field w-56!" value={note} onChange={(e) => setNote(e.target.value)} placeholder="note (needed to decline)" aria-label="Note" maxLength={500} />
      <ActionButton label="Approve" busy="Approving…" testId="answer-error" run={() => answerRequest(id, true, note)} />
      <ActionButton danger label="Decline" busy="Declining…" testId="answer-error" run={() => answerRequest(id, false, note)} />
    </span>
  );
}
