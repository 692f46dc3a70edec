"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import { makeTemplate } from "@/app/actions/make-template";

export function MakeTemplateButton({ guestId, guestName }: { guestId: string; guestName: string }) {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [pending, startTransition] = useTransition();
  return (
    <>
      <button
        className="btn"
        disabled={pending}
        onClick={() => {
          if (!window.confirm(`Make ${guestName} a template? It can then no longer be started or edited; new guests are cloned from it.`)) return;
          startTransition(async () => {
            const result = await makeTemplate(guestId);
            if (result.ok) router.refresh();
            else setError(result.error);
          });
        }}
      >
        Convert to template
      </button>
      {error && (
        <span role="alert" className="text-sm text-red-800">
          {error}
        </span>
      )}
    </>
  );
}
