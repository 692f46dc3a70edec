"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import {
  attachDisk,
  checkDisk,
  convertDisk,
  createDisk,
  deleteDisk,
  deleteIso,
  setIsoPublished,
  removeUploadPart,
  detachDisk,
  importImage,
  resizeDisk,
  snapshotDisk,
} from "@/app/actions/disks";
import { FORMAT_EXTENSIONS } from "@/server/domain/types";
import type { ActionResult } from "@/server/web/action";
import { ActionButton, ErrorLine } from "./action-button";
import { useFormAction } from "./use-form-action";


/** A new empty disk: folder, name, format, size with units, optional encryption. */
export function CreateDiskForm({ pools }: { pools: string[] }) {
  const router = useRouter();
  const [encrypt, setEncrypt] = useState(false);
  const { onSubmit, error, quota, pending } = useFormAction(
    (form) =>
      createDisk({
        pool: form.get("pool"),
        file: form.get("file"),
        format: form.get("format"),
        size: form.get("size"),
        encrypt,
        passphrase: String(form.get("passphrase") ?? ""),
      }),
    (disk) => router.push(`/disks/${disk.id}`),
  );
  return (
    <form onSubmit={onSubmit} className="space-y-3" aria-label="New disk">
      <div className="grid gap-3 sm:grid-cols-4">
        <label className="label">
          Folder
          <select name="pool" className="field">
            {pools.map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </label>
        <label className="label">
          Name
          <input name="file" className="field" required placeholder="data.qcow2" />
        </label>
        <label className="label">
          Format
          <select name="format" className="field" defaultValue="qcow2">
            <option value="qcow2">qcow2 (snapshots, thin)</option>
            <option value="raw">raw (sparse file)</option>
          </select>
        </label>
        <label className="label">
          Size
          <input name="size" className="field" required placeholder="20G" />
        </label>
      </div>
      <label className="flex items-center gap-2 text-sm">
        <input type="checkbox" checked={encrypt} onChange={(e) => setEncrypt(e.target.checked)} /> Encrypt (LUKS, qcow2 only)
      </label>
      {encrypt && (
        <label className="label">
          Passphrase (kept by the host; you will not see it again)
          <input name="passphrase" type="password" className="field" minLength={8} required autoComplete="new-password" />
        </label>
      )}
      <button className="btn btn-primary" disabled={pending}>
        {pending ? "Creating…" : "Create disk"}
      </button>
      <ErrorLine error={error} quota={quota} testId="form-error" />
    </form>
  );
}

/** Runs an action from a button, shows its error, refreshes the page after. */
function useButtonAction() {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [pending, startTransition] = useTransition();
  const run = <T,>(action: () => Promise<ActionResult<T>>, onDone?: (data: T) => void) => {
    setError(null);
    startTransition(async () => {
      const result = await action();
      if (!result.ok) return setError(result.error);
      onDone?.(result.data);
      router.refresh();
    });
  };
  return { run, error, pending };
}

export function ImportButton({ pool, file }: { pool: string; file: string }) {
  const router = useRouter();
  const { run, error, pending } = useButtonAction();
  return (
    <span>
      <button className="btn" disabled={pending} onClick={() => run(() => importImage({ pool, file }), (d) => router.push(`/disks/${d.id}`))}>
        Import
      </button>
      <ErrorLine error={error} />
    </span>
  );
}

export function ConvertForm({ diskId, baseName }: { diskId: string; baseName: string }) {
  const router = useRouter();
  const { onSubmit, error, quota, pending } = useFormAction(
    (form) => convertDisk(diskId, { file: form.get("file"), format: form.get("format") }),
    (result) => router.push(`/disks/${result.diskId}`),
  );
  const [format, setFormat] = useState("qcow2");
  const ext = FORMAT_EXTENSIONS as Record<string, string>;
  return (
    <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label="Convert">
      <label className="label">
        To format
        <select name="format" className="field" value={format} onChange={(e) => setFormat(e.target.value)}>
          <option value="qcow2">qcow2</option>
          <option value="raw">raw</option>
          <option value="vmdk">vmdk (VMware)</option>
          <option value="vdi">vdi (VirtualBox)</option>
          <option value="vpc">vhd (Virtual PC, older Hyper-V)</option>
          <option value="vhdx">vhdx (Hyper-V)</option>
        </select>
      </label>
      <label className="label">
        New image&apos;s name
        <input key={format} name="file" className="field" required defaultValue={`${baseName}.${ext[format]}`} />
      </label>
      <button className="btn" disabled={pending}>
        {pending ? "Starting…" : "Convert"}
      </button>
      <ErrorLine error={error} quota={quota} testId="convert-error" />
    </form>
  );
}

export function ResizeForm({ diskId, current }: { diskId: string; current: string }) {
  const router = useRouter();
  const [shrink, setShrink] = useState(false);
  const { onSubmit, error, quota, pending } = useFormAction(
    (form) => resizeDisk(diskId, { size: form.get("size"), shrink }),
    () => router.refresh(),
  );
  return (
    <form onSubmit={onSubmit} className="space-y-2" aria-label="Resize">
      <div className="flex flex-wrap items-end gap-2">
        <label className="label">
          New size (now {current})
          <input name="size" className="field" required placeholder="40G" />
        </label>
        <button className="btn" disabled={pending}>
          {pending ? "Resizing…" : "Resize"}
        </button>
      </div>
      <label className="flex items-center gap-2 text-xs text-slate-600">
        <input type="checkbox" checked={shrink} onChange={(e) => setShrink(e.target.checked)} />
        Allow shrinking: data past the new end is lost (shrink the file systems inside first; stopped guests only)
      </label>
      <ErrorLine error={error} quota={quota} testId="resize-error" />
    </form>
  );
}

export function SnapshotPanel({ diskId, snapshots }: { diskId: string; snapshots: Array<{ name: string; date: number; vmState: string }> }) {
  const router = useRouter();
  const { run, error, pending } = useButtonAction();
  const { onSubmit, error: createError, quota, pending: creating } = useFormAction(
    (form) => snapshotDisk(diskId, { op: "create", name: form.get("name") }),
    () => router.refresh(),
  );
  return (
    <div className="space-y-3">
      {snapshots.length === 0 ? (
        <p className="text-sm text-slate-600">No snapshots.</p>
      ) : (
        <table className="w-full text-left text-sm">
          <thead className="text-xs uppercase text-slate-500">
            <tr>
              <th className="py-1">Name</th>
              <th>Taken</th>
              <th>Memory</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {snapshots.map((s) => (
              <tr key={s.name} data-testid="snapshot" data-name={s.name}>
                <td className="py-1 font-medium">{s.name}</td>
                <td>{new Date(s.date).toLocaleString()}</td>
                <td>{s.vmState}</td>
                <td className="space-x-2 text-right">
                  <button
                    className="btn"
                    disabled={pending}
                    onClick={() => {
                      if (confirm(`Revert to "${s.name}"? Everything written since is lost.`)) run(() => snapshotDisk(diskId, { op: "revert", name: s.name }));
                    }}
                  >
                    Revert
                  </button>
                  <button
                    className="btn btn-danger"
                    disabled={pending}
                    onClick={() => {
                      if (confirm(`Delete snapshot "${s.name}"?`)) run(() => snapshotDisk(diskId, { op: "delete", name: s.name }));
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form onSubmit={onSubmit} className="flex items-end gap-2" aria-label="Take snapshot">
        <label className="label">
          Snapshot name
          <input name="name" className="field" required defaultValue={`snap-${new Date().toISOString().slice(0, 10)}`} />
        </label>
        <button className="btn" disabled={creating}>
          {creating ? "Taking…" : "Take snapshot"}
        </button>
      </form>
      <ErrorLine error={error ?? createError} quota={error ? null : quota} testId="snapshot-error" />
    </div>
  );
}

export function AttachForm({ diskId, guests }: { diskId: string; guests: Array<{ id: string; name: string; state: string }> }) {
  const router = useRouter();
  const { onSubmit, error, pending } = useFormAction(
    (form) => attachDisk(diskId, { guestId: form.get("guest"), bus: form.get("bus") }),
    () => router.refresh(),
  );
  if (guests.length === 0) return <p className="text-sm text-slate-600">You have no guest to attach it to.</p>;
  return (
    <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-2" aria-label="Attach">
      <label className="label">
        Guest
        <select name="guest" className="field">
          {guests.map((g) => (
            <option key={g.id} value={g.id}>
              {g.name} ({g.state})
            </option>
          ))}
        </select>
      </label>
      <label className="label">
        Bus
        <select name="bus" className="field" defaultValue="virtio">
          <option value="virtio">virtio</option>
          <option value="scsi">SCSI</option>
          <option value="ide">IDE/SATA (stopped guests only)</option>
        </select>
      </label>
      <button className="btn" disabled={pending}>
        {pending ? "Attaching…" : "Attach"}
      </button>
      <ErrorLine error={error} testId="attach-error" />
    </form>
  );
}

export function DetachButton({ diskId, guestName }: { diskId: string; guestName: string }) {
  return <ActionButton label={`Detach from ${guestName}`} busy="Detaching…" question={() => `Detach this disk from ${guestName}?`} run={() => detachDisk(diskId)} />;
}

export function CheckButton({ diskId }: { diskId: string }) {
  const { run, error, pending } = useButtonAction();
  const [report, setReport] = useState<{ ok: boolean; report: string } | null>(null);
  return (
    <div className="space-y-2">
      <button className="btn" disabled={pending} onClick={() => run(() => checkDisk(diskId), setReport)}>
        {pending ? "Checking…" : "Check consistency"}
      </button>
      {report && (
        <pre className={`whitespace-pre-wrap rounded p-2 text-xs ${report.ok ? "bg-emerald-50 text-emerald-900" : "bg-red-50 text-red-900"}`} data-testid="check-report">
          {report.report}
        </pre>
      )}
      <ErrorLine error={error} />
    </div>
  );
}

/** Delete, with a confirmation that names what used the disk. */
export function DeleteDiskButton({ diskId, file, usedBy }: { diskId: string; file: string; usedBy: string[] }) {
  const router = useRouter();
  const uses = usedBy.length ? `\n\nUsed by: ${usedBy.join(", ")}.` : "";
  return (
    <ActionButton
      danger
      label="Delete disk"
      busy="Deleting…"
      testId="delete-error"
      question={() => `Delete ${file} and its data for good?${uses}`}
      run={() => deleteDisk(diskId)}
      onDone={() => router.push("/disks")}
    />
  );
}


/** Deletes an ISO image from the host (admins); refused while a guest has it as CD-ROM. */
export function DeleteIsoButton({ name, usedBy }: { name: string; usedBy: string[] }) {
  const uses = usedBy.length ? `\n\nIt is the CD-ROM of: ${usedBy.join(", ")}. Remove it from them first.` : "";
  return <ActionButton danger label="Delete" busy="Deleting…" testId="iso-error" question={() => `Delete the ISO ${name} from the host?${uses}`} run={() => deleteIso(name)} />;
}

/** Offers a team's ISO to every team, or takes it back (admins). */
export function PublishIsoButton({ name, published }: { name: string; published: boolean }) {
  return <ActionButton label={published ? "Unpublish" : "Publish"} busy="Saving…" testId="iso-error" run={() => setIsoPublished(name, !published)} />;
}

/** Removes an interrupted upload kept for resuming. */
export function RemovePartButton({ pool, file }: { pool: string; file: string }) {
  return (
    <ActionButton
      danger
      label="Remove"
      busy="Removing…"
      testId="part-error"
      question={() => `Remove the interrupted upload of ${file}? It cannot be resumed afterwards.`}
      run={() => removeUploadPart({ pool, file })}
    />
  );
}
