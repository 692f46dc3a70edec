"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { makeApiToken, revokeApiToken } from "@/app/actions/tokens";
import { TOKEN_SCOPES } from "@/server/auth/policy";
import { ActionButton, ErrorLine } from "./action-button";
import { CopyButton } from "./copy-button";
import { useFormAction } from "./use-form-action";

/** A new API token: name, scope, days, optionally one team; the token is shown this once. */
export function NewTokenForm({ teams }: { teams: Array<{ id: string; name: string }> }) {
  const router = useRouter();
  const [token, setToken] = useState<string | null>(null);
  const { onSubmit, error, pending } = useFormAction(
    (form) => makeApiToken({ name: form.get("name"), scope: form.get("scope"), days: form.get("days"), teamId: form.get("teamId") }),
    (made) => {
      setToken(made.token);
      router.refresh();
    },
  );
  return (
    <form onSubmit={onSubmit} className="space-y-2" aria-label="New API token">
      <div className="flex flex-wrap items-end gap-2">
        <input name="name" className="field w-40!" required maxLength={64} placeholder="what it is for" aria-label="Token's name" />
        <select name="scope" className="field w-32!" defaultValue="read" aria-label="Token's scope">
          {TOKEN_SCOPES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <input name="days" type="number" min={1} max={366} defaultValue={30} className="field w-24!" aria-label="Days it works" />
        <select name="teamId" className="field w-40!" defaultValue="" aria-label="Limited to a team">
          <option value="">every team of mine</option>
          {teams.map((t) => (
            <option key={t.id} value={t.id}>
              only {t.name}
            </option>
          ))}
        </select>
        <button className="btn" disabled={pending}>
          {pending ? "Making…" : "Make a token"}
        </button>
      </div>
      {token && (
        <p className="flex items-center gap-2 rounded bg-emerald-50 p-2 text-sm" data-testid="new-token">
          <code className="break-all">{token}</code> <CopyButton text={token} /> shown this once: keep it now.
        </p>
      )}
      <ErrorLine error={error} testId="token-error" />
    </form>
  );
}

export function RevokeTokenButton({ id }: { id: string }) {
  return <ActionButton danger label="Revoke" busy="Revoking…" testId="token-revoke-error" run={() => revokeApiToken(id)} />;
}
