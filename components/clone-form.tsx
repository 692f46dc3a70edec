"use client";

import { useRouter } from "next/navigation";
import { cloneGuest } from "@/app/actions/clone-guest";
import { AskForMore } from "./quota-ask";
import { useFormAction } from "./use-form-action";

/** Clone a guest (full copy) or a template (linked clone by default). */
export function CloneForm({ guestId, guestName, isTemplate }: { guestId: string; guestName: string; isTemplate: boolean }) {
  const router = useRouter();
  const { onSubmit: submit, error, quota, pending } = useFormAction(
    (form) => cloneGuest(guestId, { name: form.get("clone-name"), mode: form.get("mode") }),
    (guest) => router.push(`/guests/${guest.id}`),
  );

  return (
    <form onSubmit={submit} className="space-y-2" aria-label="Clone">
      <div className="flex flex-wrap items-end gap-2">
        <label className="label">
          New guest&apos;s name
          <input name="clone-name" className="field" required defaultValue={`${guestName}-copy`} />
        </label>
        <label className="label">
          Disks
          <select name="mode" className="field" defaultValue={isTemplate ? "linked" : "full"}>
            <option value="full">Full copy</option>
            {isTemplate && <option value="linked">Linked (thin, backed by the template)</option>}
          </select>
        </label>
        <button type="submit" className="btn" disabled={pending}>
          {pending ? "Cloning…" : isTemplate ? "Create guest from template" : "Clone"}
        </button>
      </div>
      <p className="text-xs text-slate-500">The copy gets new MAC addresses and no port forwards.</p>
      {error && (
        <p role="alert" data-testid="clone-error" className="rounded-md bg-red-50 p-2 text-sm text-red-800">
          {error}
          <AskForMore quota={quota} />
        </p>
      )}
    </form>
  );
}
