"use client";

import { useState, useTransition } from "react";
import type { QuotaRefusal } from "@/server/domain/types";
import type { ActionResult } from "@/server/web/action";

/**
 * Submits a form to a server action and keeps its error. onSubmit rather than
 * <form action>: React resets a form after an action, which would wipe what the
 * person typed when the server refuses it.
 */
export function useFormAction<T>(action: (form: FormData) => Promise<ActionResult<T>>, onSuccess: (data: T) => void) {
  const [error, setError] = useState<string | null>(null);
  const [quota, setQuota] = useState<QuotaRefusal | null>(null);
  const [pending, startTransition] = useTransition();
  function onSubmit(event: React.FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setError(null);
    startTransition(async () => {
      const result = await action(form);
      setQuota(result.ok ? null : (result.quota ?? null));
      if (result.ok) onSuccess(result.data);
      else setError(result.error);
    });
  }
  return { onSubmit, error, quota, pending };
}
