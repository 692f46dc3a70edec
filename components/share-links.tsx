"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import { createShareLink, revokeShareLink } from "@/app/actions/share-console";
import { SHARE_DURATION_NAMES, SHARE_DURATIONS, SHARE_LABEL_MAX, type ShareDuration, type ShareView } from "@/server/console/types";
import { CopyButton } from "./copy-button";

/**
 * View-only links to the guest's screen: make one (1, 8 or 24 hours), see the link
 * once, revoke it. Whoever opens the link sees the screen live without logging in,
 * and can neither type nor click (the server drops their input).
 */
export function ShareLinks({ guestId, shares }: { guestId: string; shares: ShareView[] }) {
  const router = useRouter();
  const [duration, setDuration] = useState<ShareDuration>("1h");
  const [label, setLabel] = useState("");
  const [made, setMade] = useState<{ url: string; expiresAt: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [pending, startTransition] = useTransition();

  function create(event: React.FormEvent) {
    event.preventDefault();
    setError(null);
    startTransition(async () => {
      const result = await createShareLink(guestId, duration, label);
      if (!result.ok) return setError(result.error);
      setMade({ url: `${window.location.origin}${result.data.path}`, expiresAt: result.data.expiresAt });
      setLabel("");
      router.refresh();
    });
  }

  function revoke(id: string) {
    setError(null);
    startTransition(async () => {
      const result = await revokeShareLink(guestId, id);
      if (!result.ok) setError(result.error);
      router.refresh();
    });
  }

  return (
    <section className="card space-y-3 p-4" aria-labelledby="share-title">
      <h2 id="share-title" className="font-semibold">
        View-only links
      </h2>
      <form onSubmit={create} className="flex flex-wrap items-end gap-2">
        <label className="label flex-1">
          Label (optional)
          <input
            name="share-label"
            className="field"
            maxLength={SHARE_LABEL_MAX}
            placeholder="e.g. support call"
            value={label}
            onChange={(e) => setLabel(e.target.value)}
          />
        </label>
        <label className="label">
          Works for
          <select name="share-duration" className="field" value={duration} onChange={(e) => setDuration(e.target.value as ShareDuration)}>
            {(Object.keys(SHARE_DURATIONS) as ShareDuration[]).map((d) => (
              <option key={d} value={d}>
                {SHARE_DURATION_NAMES[d]}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="btn btn-primary" disabled={pending}>
          Create link
        </button>
      </form>
      {made && (
        <div className="space-y-1 rounded border border-emerald-300 bg-emerald-50 p-2 text-sm">
          <p>Anyone with this link can watch the screen until {new Date(made.expiresAt).toLocaleString()}. It is shown only now:</p>
          <div className="flex items-center gap-2">
            <input readOnly data-testid="share-url" className="field mt-0 font-mono text-xs" value={made.url} onFocus={(e) => e.target.select()} />
            <CopyButton text={made.url} />
          </div>
        </div>
      )}
      {error && (
        <p className="text-sm text-red-700" data-testid="share-error">
          {error}
        </p>
      )}
      {shares.length > 0 && (
        <ul className="divide-y divide-slate-100 text-sm" data-testid="share-list">
          {shares.map((s) => (
            <li key={s.id} data-testid="share-link" data-state={s.state} className="flex items-center justify-between gap-2 py-1.5">
              <span>
                <span className="font-medium">{s.label || "Unlabelled link"}</span>{" "}
                <span className="text-slate-500">
                  by {s.createdBy ?? "someone"},{" "}
                  {s.state === "active"
                    ? `works until ${new Date(s.expiresAt).toLocaleString()}`
                    : s.state === "revoked"
                      ? "revoked"
                      : "expired"}
                </span>
              </span>
              {s.state === "active" && (
                <button type="button" className="btn btn-danger" disabled={pending} onClick={() => revoke(s.id)}>
                  Revoke
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
