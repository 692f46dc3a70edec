"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import { beginTotp, endTotp, finishTotp, newRecoveryCodes } from "@/app/actions/people";
import { ErrorLine } from "./action-button";
import { CopyButton } from "./copy-button";

/** Recovery codes, shown the one time they exist in clear. */
function RecoveryCodes({ codes }: { codes: string[] }) {
  return (
    <div className="space-y-2 rounded-md bg-amber-50 p-3" data-testid="recovery-codes">
      <p className="text-sm">
        Keep these recovery codes somewhere safe: each logs you in once without your phone. They are not shown again.
      </p>
      <ul className="grid grid-cols-2 gap-1 font-mono text-sm">
        {codes.map((c) => (
          <li key={c}>{c}</li>
        ))}
      </ul>
      <CopyButton text={codes.join("\n")} label="Copy the codes" />
    </div>
  );
}

/**
 * Two-factor login on the account page: set up with an authenticator app (scan, then a
 * first code), new recovery codes, or turned off (password and a code; not while a team
 * requires it).
 */
export function SecondFactor({ enabled, recoveryCodesLeft, requiredBy }: { enabled: boolean; recoveryCodesLeft: number; requiredBy: string[] }) {
  const router = useRouter();
  const [pending, startTransition] = useTransition();
  const [error, setError] = useState<string | null>(null);
  const [setup, setSetup] = useState<{ secret: string; uri: string; qrSvg: string } | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [code, setCode] = useState("");
  const [password, setPassword] = useState("");
  const run = <T,>(action: () => Promise<{ ok: true; data: T } | { ok: false; error: string }>, then: (data: T) => void) => {
    setError(null);
    startTransition(async () => {
      const result = await action();
      if (!result.ok) return setError(result.error);
      then(result.data);
      setCode("");
      setPassword("");
      router.refresh();
    });
  };
  if (codes) return <RecoveryCodes codes={codes} />;
  if (!enabled && !setup) {
    return (
      <div className="space-y-2">
        <p className="text-sm text-slate-600">
          Off. With it on, logging in takes a code from an authenticator app on your phone as well as your password.
          {requiredBy.length > 0 && <strong className="text-amber-800"> {requiredBy.join(", ")} require{requiredBy.length === 1 ? "s" : ""} it: set it up to go on.</strong>}
        </p>
        <button className="btn btn-primary" disabled={pending} onClick={() => run(() => beginTotp(), setSetup)}>
          Set up two-factor login
        </button>
        <ErrorLine error={error} testId="totp-error" />
      </div>
    );
  }
  if (setup) {
    return (
      <form
        className="space-y-2"
        onSubmit={(e) => {
          e.preventDefault();
          run(() => finishTotp(code), (d) => setCodes(d.recoveryCodes));
        }}
      >
        <p className="text-sm">Scan this with your authenticator app, or type the key into it, then enter the code it shows.</p>
        <div className="h-44 w-44" dangerouslySetInnerHTML={{ __html: setup.qrSvg }} data-testid="totp-qr" />
        <p className="break-all font-mono text-sm" data-testid="totp-secret">
          {setup.secret}
        </p>
        <input className="field w-40!" value={code} onChange={(e) => setCode(e.target.value)} inputMode="numeric" autoComplete="one-time-code" placeholder="123456" aria-label="Code from the app" required />
        <button className="btn btn-primary" disabled={pending}>
          Turn on
        </button>
        <ErrorLine error={error} testId="totp-error" />
      </form>
    );
  }
  return (
    <div className="space-y-3">
      <p className="text-sm" data-testid="totp-on">
        On. {recoveryCodesLeft} recovery code{recoveryCodesLeft === 1 ? "" : "s"} left.
      </p>
      <div className="flex flex-wrap items-end gap-2">
        <input className="field w-40!" value={code} onChange={(e) => setCode(e.target.value)} autoComplete="one-time-code" placeholder="code from the app" aria-label="Code" />
        <button className="btn" disabled={pending} onClick={() => run(() => newRecoveryCodes(code), (d) => setCodes(d.recoveryCodes))}>
          New recovery codes
        </button>
        {requiredBy.length === 0 && (
          <>
            <input className="field w-40!" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" placeholder="password" aria-label="Password" />
            <button className="btn btn-danger" disabled={pending} onClick={() => run(() => endTotp(password, code), () => {})}>
              Turn off
            </button>
          </>
        )}
      </div>
      <ErrorLine error={error} testId="totp-error" />
    </div>
  );
}
