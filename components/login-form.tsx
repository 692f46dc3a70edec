"use client";

import { useActionState } from "react";
import { login, type LoginState } from "@/app/actions/login";

export function LoginForm() {
  const [state, action, pending] = useActionState<LoginState, FormData>(login, { error: null, username: "" });
  return (
    <form action={action} className="card space-y-4 p-6">
      <label className="label">
        User name
        <input name="username" autoComplete="username" defaultValue={state.username} required className="field" />
      </label>
      <label className="label">
        Password
        <input name="password" type="password" autoComplete="current-password" required className="field" />
      </label>
      {state.error && (
        <p role="alert" data-testid="form-error" className="text-sm text-red-700">
          {state.error}
        </p>
      )}
      <button type="submit" disabled={pending} className="btn btn-primary w-full justify-center">
        {pending ? "Logging in…" : "Log in"}
      </button>
    </form>
  );
}
