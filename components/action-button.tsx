"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import type { ActionResult } from "@/server/web/action";

/** A server action's refusal, beside what asked for it. */
export function ErrorLine({ error, testId = "action-error" }: { error: string | null; testId?: string }) {
  return error ? (
    <p className="text-sm text-red-700" data-testid={testId}>
      {error}
    </p>
  ) : null;
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
            if (!result.ok) return setError(result.error);
            onDone?.(result.data);
            router.refresh();
          });
        }}
      >
        {pending ? busy : label}
      </button>
      <ErrorLine error={error} testId={testId} />
    </span>
  );
}
