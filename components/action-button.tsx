"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import type { QuotaRefusal } from "@/server/domain/types";
import type { ActionResult } from "@/server/web/action";
import { AskForMore } from "./quota-ask";

/** A server action's refusal, beside what asked for it; a quota's with a link to ask for more. */
export function ErrorLine({ error, quota, testId = "action-error" }: { error: string | null; quota?: QuotaRefusal | null; testId?: string }) {
  return error ? (
    <p className="text-sm text-red-700" data-testid={testId}>
      {error}
      <AskForMore quota={quota} />
    </p>
  ) : null;
}

/** A full-width form's end: the server's refusal (for a screen reader too), then its submit button. */
export function SubmitRow({ error, pending, label, busy }: { error: string | null; pending: boolean; label: string; busy: string }) {
  return (
    <>
      {error && (
        <p role="alert" data-testid="form-error" className="text-sm text-red-700">
          {error}
        </p>
      )}
      <button type="submit" disabled={pending} className="btn btn-primary w-full justify-center">
        {pending ? busy : label}
      </button>
    </>
  );
}

/**
 * A button that runs one server action (asking first when `question` says what to ask),
 * shows its refusal beside it (under `testId`), and refreshes the page once it succeeded.
 */
export function ActionButton<T>({
  label,
  busy = label,
  run,
  question,
  danger = false,
  testId,
  onDone,
}: {
  label: string;
  busy?: string;
  run: () => Promise<ActionResult<T>>;
  question?: () => string;
  danger?: boolean;
  testId?: string;
  onDone?: (data: T) => void;
}) {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [quota, setQuota] = useState<QuotaRefusal | null>(null);
  const [pending, startTransition] = useTransition();
  return (
    <span className="space-x-2">
      <button
        type="button"
        className={danger ? "btn btn-danger" : "btn"}
        disabled={pending}
        onClick={() => {
          if (question && !confirm(question())) return;
          setError(null);
          startTransition(async () => {
            const result = await run();
            setQuota(result.ok ? null : (result.quota ?? null));
            if (!result.ok) return setError(result.error);
            onDone?.(result.data);
            router.refresh();
          });
        }}
      >
        {pending ? busy : label}
      </button>
      <ErrorLine error={error} quota={quota} testId={testId} />
    </span>
  );
}
