"use client";

import { useRouter } from "next/navigation";
import type { QuotaRefusal } from "@/server/domain/types";
import { AskForMore } from "./quota-ask";
import { useState, useTransition } from "react";
import { importGuest } from "@/app/actions/import-guest";

/** Import a guest definition: paste its JSON or pick the exported file. */
export function ImportForm() {
  const router = useRouter();
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [quota, setQuota] = useState<QuotaRefusal | null>(null);
  const [pending, startTransition] = useTransition();

  return (
    <form
      className="card space-y-3 p-6"
      aria-label="Import"
      onSubmit={(event) => {
        event.preventDefault();
        setError(null);
        startTransition(async () => {
          const result = await importGuest(text);
          if (result.ok) router.push(`/guests/${result.data.id}`);
          else {
            setError(result.error);
            setQuota(result.quota ?? null);
          }
        });
      }}
    >
      <p className="text-sm text-slate-600">
        A definition exported from a guest page (<code>*.guesthouse.json</code>). The new guest gets new, empty disks of
        the same sizes and new MAC addresses.
      </p>
      <input
        type="file"
        accept=".json,application/json"
        className="text-sm"
        onChange={async (e) => {
          const file = e.target.files?.[0];
          if (file) setText(await file.text());
        }}
      />
      <textarea
        name="definition"
        className="field font-mono text-xs"
        rows={8}
        placeholder='{ "guesthouse": 1, "name": "…", … }'
        value={text}
        onChange={(e) => setText(e.target.value)}
      />
      {error && (
        <p role="alert" data-testid="import-error" className="rounded-md bg-red-50 p-3 text-sm text-red-800">
          {error}
          <AskForMore quota={quota} />
        </p>
      )}
      <div className="flex justify-end">
        <button type="submit" className="btn" disabled={pending || !text.trim()}>
          {pending ? "Importing…" : "Import guest"}
        </button>
      </div>
    </form>
  );
}
