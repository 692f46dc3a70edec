"use client";

import { useRouter } from "next/navigation";
import { createGuest } from "@/app/actions/create-guest";
import type { IsoInfo } from "@/server/domain/types";
import type { LIMITS } from "@/server/domain/validation";
import { formatBytes } from "@/server/domain/format";
import { AskForMore } from "./quota-ask";
import { useFormAction } from "./use-form-action";

export function CreateGuestForm({ isos, limits, nameRule, networks }: { isos: IsoInfo[]; limits: typeof LIMITS; nameRule: string; networks: string[] }) {
  const router = useRouter();
  const { onSubmit: submit, error, quota, pending } = useFormAction(createGuest, (guest) => router.push(`/guests/${guest.id}`));

  return (
    <form onSubmit={submit} className="card grid grid-cols-2 gap-4 p-6">
      <label className="label col-span-2">
        Name
        <input name="name" required maxLength={63} placeholder="web-01" className="field" aria-describedby="name-rule" />
        <span id="name-rule" className="mt-1 block text-xs font-normal text-slate-500">{nameRule}.</span>
      </label>
      <label className="label">
        vCPUs
        <input name="vcpus" type="number" defaultValue={1} min={limits.vcpus.min} max={limits.vcpus.max} required className="field" />
      </label>
      <label className="label">
        Memory (MiB)
        <input name="memoryMiB" type="number" defaultValue={256} min={limits.memoryMiB.min} max={limits.memoryMiB.max} step={1} required className="field" />
      </label>
      <label className="label">
        Disk (GiB, sparse qcow2; 0 for none)
        <input name="diskGiB" type="number" defaultValue={2} min={0} max={limits.diskGiB.max} required className="field" />
      </label>
      <label className="label">
        Disk bus
        <select name="diskBus" defaultValue="virtio" className="field">
          <option value="virtio">virtio</option>
          <option value="ide">IDE (SATA)</option>
        </select>
      </label>
      <label className="label">
        CD-ROM
        <select name="iso" defaultValue={isos[0]?.name ?? ""} className="field">
          <option value="">none</option>
          {isos.map((iso) => (
            <option key={iso.name} value={iso.name}>
              {iso.name} ({formatBytes(iso.sizeBytes)})
            </option>
          ))}
        </select>
      </label>
      <label className="label">
        Boot from
        <select name="boot" defaultValue="cdrom" className="field">
          <option value="cdrom">CD-ROM, then disk</option>
          <option value="disk">Disk, then CD-ROM</option>
        </select>
      </label>
      <label className="label col-span-2">
        Network
        <select name="network" defaultValue="user" className="field">
          <option value="user">User mode (NAT with built-in DHCP, virtio, generated MAC)</option>
          {networks.map((name) => (
            <option key={name} value={name}>
              The team&apos;s network {name}
            </option>
          ))}
          <option value="none">None</option>
        </select>
      </label>
      {error && (
        <p role="alert" data-testid="form-error" className="col-span-2 rounded-md bg-red-50 p-3 text-sm text-red-800">
          {error}
          <AskForMore quota={quota} />
        </p>
      )}
      <div className="col-span-2 flex justify-end">
        <button type="submit" disabled={pending} className="btn btn-primary">
          {pending ? "Creating…" : "Create guest"}
        </button>
      </div>
    </form>
  );
}
