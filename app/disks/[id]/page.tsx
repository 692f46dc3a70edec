import Link from "next/link";
import { AttachForm, CheckButton, ConvertForm, DeleteDiskButton, DetachButton, ResizeForm, SnapshotPanel } from "@/components/disk-forms";
import { LiveTaskBars } from "@/components/task-progress";
import { HandOverForm } from "@/components/hand-over-form";
import { handOverTeamsFor } from "@/server/web/hand-over";
import { can, ownedWhere } from "@/server/auth/policy";
import { db } from "@/server/db/client";
import { formatBytes } from "@/server/domain/format";
import { cloneNames, loadDiskOr404, refOf } from "@/server/web/disks";
import { agentFor, liveStates } from "@/server/web/guests";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function DiskPage({ params }: { params: Promise<{ id: string }> }) {
  const user = await requireUser();
  const disk = await loadDiskOr404(user, (await params).id);
  const handOverTeams = can(user, "hand-over", disk)
    ? await handOverTeamsFor(user)
    : [];
  const agent = agentFor(disk.host);
  const [info, tasks, guests] = await Promise.all([
    disk.state === "ready" ? agent.image(refOf(disk)).then((i) => ({ ok: true as const, i }), (e: Error) => ({ ok: false as const, error: e.message })) : null,
    db.task.findMany({ where: { diskId: disk.id }, orderBy: { startedAt: "desc" }, take: 5 }),
    db.guest.findMany({
      // The guests it may go into: its own owner's, which this user may change.
      where: { hostId: disk.hostId, isTemplate: false, teamId: disk.teamId, ownerId: disk.ownerId, ...ownedWhere(user, "change") },
      orderBy: { name: "asc" },
      select: { id: true, name: true, host: { select: { id: true, endpoint: true } } },
    }),
  ]);
  const states = await liveStates(guests);
  const image = info?.ok ? info.i : null;
  const usedBy = [...(disk.guest ? [disk.guest.name] : []), ...cloneNames(disk, user).map((name) => `linked clone ${name}`)];
  const baseName = disk.file.replace(/\.[A-Za-z0-9]+$/, "");

  return (
    <div className="space-y-6">
      <div>
        <Link href="/disks" className="text-sm text-indigo-700 hover:underline">
          ← Disks
        </Link>
        <h1 className="mt-1 text-2xl font-semibold" data-testid="disk-name">
          {disk.file}
        </h1>
        <p className="text-sm text-slate-600">
          in {disk.pool} on {disk.host.name} · owned by {disk.owner.username}
          {disk.state === "pending" && " · being made by a task"}
        </p>
      </div>

      {tasks.length > 0 && (
        <section className="card space-y-2 p-4">
          <h2 className="font-semibold">Tasks</h2>
          <LiveTaskBars initial={tasks.map(({ id, state, progress, message }) => ({ id, state, progress, message }))} labels={Object.fromEntries(tasks.map((t) => [t.id, t.title]))} />
        </section>
      )}

      <section className="card p-4">
        <h2 className="mb-2 font-semibold">Image</h2>
        {info && !info.ok && <p className="text-red-700" data-testid="image-error">{info.error}</p>}
        {image && (
          <>
            <dl className="grid grid-cols-2 gap-x-6 gap-y-1 text-sm sm:grid-cols-4" data-testid="image-info">
              <dt className="text-slate-500">Format</dt>
              <dd data-testid="image-format">{image.format}</dd>
              <dt className="text-slate-500">Virtual size</dt>
              <dd data-testid="image-size">{formatBytes(image.virtualBytes)}</dd>
              <dt className="text-slate-500">Allocated</dt>
              <dd>{formatBytes(image.actualBytes)}</dd>
              <dt className="text-slate-500">Encrypted</dt>
              <dd>{image.encrypted ? "yes (LUKS)" : "no"}</dd>
              <dt className="text-slate-500">Backing chain</dt>
              <dd>{image.backing.length ? image.backing.join(" → ") : "none"}</dd>
              <dt className="text-slate-500">Snapshots</dt>
              <dd>{image.snapshots.length}</dd>
              <dt className="text-slate-500">Clean</dt>
              <dd>{image.dirty ? <span className="text-amber-700">not closed cleanly: run a check</span> : "yes"}</dd>
              {disk.sha256 && (
                <>
                  <dt className="text-slate-500">SHA-256 (uploaded)</dt>
                  <dd className="break-all font-mono text-xs">{disk.sha256}</dd>
                </>
              )}
            </dl>
            <details className="mt-3 text-sm">
              <summary className="cursor-pointer text-slate-600">Everything qemu-img info reports</summary>
              <pre className="mt-2 overflow-x-auto rounded bg-slate-900 p-3 text-xs text-slate-100">{JSON.stringify(image.raw, null, 2)}</pre>
            </details>
          </>
        )}
      </section>

      {disk.state === "ready" && (
        <>
          <section className="card space-y-2 p-4">
            <h2 className="font-semibold">Guest</h2>
            {disk.guest ? (
              <p className="flex items-center gap-3 text-sm">
                Attached to{" "}
                <Link href={`/guests/${disk.guest.id}`} className="text-indigo-700 hover:underline">
                  {disk.guest.name}
                </Link>
                <DetachButton diskId={disk.id} guestName={disk.guest.name} />
              </p>
            ) : (
              <AttachForm diskId={disk.id} guests={guests.map((g) => ({ id: g.id, name: g.name, state: states.get(g.id)?.state ?? "unknown" }))} />
            )}
          </section>
          <section className="card space-y-2 p-4">
            <h2 className="font-semibold">Resize</h2>
            <p className="text-xs text-slate-500">Grows while the guest runs, too (it sees the new size at once). Then grow the partition and file system inside.</p>
            <ResizeForm diskId={disk.id} current={formatBytes(image?.virtualBytes ?? Number(disk.sizeBytes))} />
          </section>
          {image?.format === "qcow2" && (
            <section className="card space-y-2 p-4">
              <h2 className="font-semibold">Snapshots</h2>
              <p className="text-xs text-slate-500">Of a running guest, a snapshot also saves its memory: reverting brings the guest back to that moment.</p>
              <SnapshotPanel
                diskId={disk.id}
                snapshots={image.snapshots.map((s) => ({ name: s.name, date: s.date, vmState: s.vmStateBytes ? formatBytes(s.vmStateBytes) : "disk only" }))}
              />
            </section>
          )}
          <section className="card space-y-2 p-4">
            <h2 className="font-semibold">Convert</h2>
            <p className="text-xs text-slate-500">Writes a new image beside this one (this one stays as it is) and takes you to it while it is made.</p>
            <ConvertForm diskId={disk.id} baseName={baseName} />
          </section>
          <section className="card space-y-3 p-4">
            <h2 className="font-semibold">Check and delete</h2>
            <CheckButton diskId={disk.id} />
            <DeleteDiskButton diskId={disk.id} file={disk.file} usedBy={usedBy} />
          </section>
          {!disk.guest && can(user, "hand-over", disk) && (
            <section className="card space-y-2 p-4">
              <h2 className="font-semibold">Owner: {disk.owner.username}</h2>
              <HandOverForm kind="disk" id={disk.id} teams={handOverTeams} currentTeam={disk.teamId} />
            </section>
          )}
        </>
      )}
    </div>
  );
}
