"use client";

import { useActionState, useState } from "react";
import { login, type LoginState } from "@/app/actions/login";
import { SubmitRow } from "./action-button";

/**
 * The login form: a user name and a password, then (for an account with a second factor)
 * a code from the app or a recovery code. The fields are controlled, so what was typed
 * stays when the server asks for the code.
 */
export function LoginForm({ sso }: { sso?: { label: string } | null }) {
  const [state, action, pending] = useActionState<LoginState, FormData>(login, { error: null, username: "" });
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  return (
    <div className="space-y-3">
      <form action={action} className="card space-y-4 p-6">
        <label className="label">
          User name
          <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required className="field" />
        </label>
        <label className="label">
          Password
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required className="field" />
        </label>
        {state.needCode && (
          <label className="label">
            Code from your authenticator app (or a recovery code)
            <input name="code" autoComplete="one-time-code" inputMode="text" required autoFocus className="field" data-testid="login-code" />
          </label>
        )}
        <SubmitRow error={state.error} pending={pending} label={state.needCode ? "Check the code" : "Log in"} busy="Logging in…" />
      </form>
      {sso && (
        <a href="/auth/sso/start" className="btn w-full justify-center" data-testid="sso-login">
          {sso.label}
        </a>
      )}
    </div>
  );
}
