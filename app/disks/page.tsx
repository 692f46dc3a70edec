import Link from "next/link";
import { CreateDiskForm, DeleteIsoButton, ImportButton, PublishIsoButton, RemovePartButton } from "@/components/disk-forms";
import { UploadForm } from "@/components/upload-form";
import { LiveTaskBars } from "@/components/task-progress";
import { canCreate, canManageHost, ownedWhere, taskWhere } from "@/server/auth/policy";
import { db } from "@/server/db/client";
import { formatBytes } from "@/server/domain/format";
import type { ImageInfo } from "@/server/domain/types";
import { refOf } from "@/server/web/disks";
import { agentFor } from "@/server/web/guests";
import { localHost } from "@/server/web/hosts";
import { isosFor } from "@/server/web/isos";
import { HandOverForm } from "@/components/hand-over-form";
import { handOverTeamsFor } from "@/server/web/hand-over";
import { requireUser } from "@/server/web/session";
import { interruptedUploads } from "@/server/web/uploads";

export const dynamic = "force-dynamic";

/**
 * Every disk image this person may see, with what qemu-img says about its file (one
 * agent call for the host), the guest that uses it, and files in the storage folders
 * that are not disks yet (to import).
 */
export default async function DisksPage() {
  const user = await requireUser();
  const host = await localHost();
  const agent = agentFor(host);
  // Every disk of the host, so the agent reads each in its registered format (and knows the rest are not disks).
  const knownRows = db.disk.findMany({ where: { hostId: host.id }, select: { pool: true, file: true, format: true } });
  const [disks, known, images, hostInfo, tasks, isos, parts] = await Promise.all([
    db.disk.findMany({
      where: { hostId: host.id, ...ownedWhere(user, "view") },
      orderBy: [{ pool: "asc" }, { file: "asc" }],
      include: { guest: { select: { id: true, name: true } }, owner: { select: { username: true } } },
    }),
    knownRows,
    knownRows.then((rows) => agent.images(rows.map(refOf))).catch(() => null),
    agent.host().catch(() => null),
    db.task.findMany({ where: { state: "running", ...taskWhere(user) }, orderBy: { startedAt: "desc" } }),
    isosFor(user, host, user.teamId, { all: true }),
    interruptedUploads(user, host),
  ]);
  const handOverTeams = (isos ?? []).some((i) => i.handOverFrom) ? await handOverTeamsFor(user) : [];
  const facts = new Map((images ?? []).map((i) => [`${i.pool}/${i.file}`, i]));
  const knownFiles = new Set(known.map((d) => `${d.pool}/${d.file}`));
  const unregistered = (images ?? []).filter((i) => !knownFiles.has(`${i.pool}/${i.file}`));
  const imagePools = (hostInfo?.pools ?? []).filter((p) => p.content === "images");

  return (
    <div className="space-y-6">
      <div className="flex items-center justify-between">
        <h1 className="text-2xl font-semibold">Disks</h1>
        <Link href="/tasks" className="text-sm text-indigo-700 hover:underline">
          All tasks →
        </Link>
      </div>
      {!images && <p className="card p-4 text-red-700">The host agent is not reachable: the files&apos; facts are missing. Check that it runs.</p>}
      <ul className="flex flex-wrap gap-3 text-sm">
        {(hostInfo?.pools ?? []).map((p) => (
          <li key={p.name} className="card px-3 py-2" data-testid="pool">
            <span className="font-medium">{p.name}</span> · {p.content === "isos" ? "ISO images" : "disk images"} · {formatBytes(p.freeBytes)} free of{" "}
            {formatBytes(p.totalBytes)}
          </li>
        ))}
      </ul>
      {tasks.length > 0 && (
        <section className="card space-y-2 p-4">
          <h2 className="font-semibold">Running tasks</h2>
          <LiveTaskBars initial={tasks.map(({ id, state, progress, message }) => ({ id, state, progress, message }))} labels={Object.fromEntries(tasks.map((t) => [t.id, t.title]))} />
        </section>
      )}
      {disks.length === 0 ? (
        <div className="card p-8 text-center text-slate-600">No disks yet. Create one below, upload an image, or import a file from a storage folder.</div>
      ) : (
        <table className="card w-full overflow-hidden text-left text-sm">
          <thead className="bg-slate-100 text-xs uppercase tracking-wide text-slate-600">
            <tr>
              <th className="px-3 py-2">Name</th>
              <th className="px-3 py-2">Folder</th>
              <th className="px-3 py-2">Format</th>
              <th className="px-3 py-2">Size</th>
              <th className="px-3 py-2">Allocated</th>
              <th className="px-3 py-2">Backing</th>
              <th className="px-3 py-2">Snapshots</th>
              <th className="px-3 py-2">Used by</th>
              {canManageHost(user) && <th className="px-3 py-2">Owner</th>}
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {disks.map((d) => {
              const f = facts.get(`${d.pool}/${d.file}`);
              const info = f && "format" in f ? (f as ImageInfo) : null;
              return (
                <tr key={d.id} data-testid="disk-row" data-disk={d.file} className="hover:bg-slate-50">
                  <td className="px-3 py-2 font-medium">
                    <Link href={`/disks/${d.id}`} className="text-indigo-700 hover:underline">
                      {d.file}
                    </Link>
                    {d.encrypted && <span className="ml-1 rounded bg-amber-50 px-1.5 text-xs text-amber-800 ring-1 ring-amber-300">encrypted</span>}
                    {d.state === "pending" && <span className="ml-1 rounded bg-slate-100 px-1.5 text-xs text-slate-600">being made…</span>}
                  </td>
                  <td className="px-3 py-2">{d.pool}</td>
                  <td className="px-3 py-2">{info?.format ?? d.format}</td>
                  <td className="px-3 py-2">{formatBytes(info?.virtualBytes ?? Number(d.sizeBytes))}</td>
                  <td className="px-3 py-2">{info ? formatBytes(info.actualBytes) : f && "error" in f ? <span className="text-red-700">{f.error}</span> : "—"}</td>
                  <td className="px-3 py-2 text-xs">{info?.backing.length ? info.backing.join(" → ") : "—"}</td>
                  <td className="px-3 py-2">{info?.snapshots.length ?? "—"}</td>
                  <td className="px-3 py-2">
                    {d.guest ? (
                      <Link href={`/guests/${d.guest.id}`} className="text-indigo-700 hover:underline">
                        {d.guest.name}
                      </Link>
                    ) : (
                      <span className="text-slate-500">free</span>
                    )}
                  </td>
                  {canManageHost(user) && <td className="px-3 py-2">{d.owner.username}</td>}
                </tr>
              );
            })}
          </tbody>
        </table>
      )}

      <section className="card space-y-2 p-4">
        <h2 className="font-semibold">ISO images</h2>
        <p className="text-sm text-slate-600">
          The host&apos;s own ISOs are every team&apos;s; one you upload is your team&apos;s only, until an admin publishes it to everyone.
        </p>
        {(isos ?? []).length === 0 ? (
          <p className="text-sm text-slate-600">No ISO images yet. Upload one below.</p>
        ) : (
          <ul className="divide-y divide-slate-100 text-sm">
            {(isos ?? []).map((iso) => (
              <li key={iso.name} className="flex flex-wrap items-center justify-between gap-2 py-2" data-testid="iso-row" data-iso={iso.name}>
                <span className="space-x-2">
                  <span className="font-medium">{iso.name}</span>
                  <span>{formatBytes(iso.sizeBytes)}</span>
                  <span className="text-slate-500" data-testid="iso-origin">
                    {iso.team === null ? "the host's, every team's" : `${iso.team}'s, uploaded by ${iso.uploader ?? "a former user"}${iso.published ? ", published to every team" : ""}`}
                  </span>
                  {iso.sha256 && (
                    <span className="break-all font-mono text-xs text-slate-500" title="SHA-256 as uploaded" data-testid="iso-sha256">
                      sha256 {iso.sha256}
                    </span>
                  )}
                </span>
                <span className="flex items-center gap-3">
                  <span className="text-slate-500">{iso.usedBy.length ? `CD-ROM of ${iso.usedBy.join(", ")}` : "not in use"}</span>
                  {iso.mayPublish && <PublishIsoButton name={iso.name} published={iso.published} />}
                  {iso.mayDelete && <DeleteIsoButton name={iso.name} usedBy={iso.usedBy} />}
                </span>
                {iso.handOverFrom && <HandOverForm kind="iso" id={iso.name} teams={handOverTeams} currentTeam={iso.handOverFrom} />}
              </li>
            ))}
          </ul>
        )}
      </section>

      {canManageHost(user) && unregistered.length > 0 && (
        <section className="card space-y-2 p-4">
          <h2 className="font-semibold">Files in the storage folders that are not disks yet</h2>
          <ul className="divide-y divide-slate-100 text-sm">
            {unregistered.map((i) => (
              <li key={`${i.pool}/${i.file}`} className="flex items-center justify-between py-2" data-testid="unregistered" data-file={i.file}>
                <span>
                  <span className="font-medium">{i.file}</span> in {i.pool} ·{" "}
                  {"format" in i ? `${i.format}, ${formatBytes(i.virtualBytes)}${i.encrypted ? ", encrypted (cannot be imported)" : ""}` : <span className="text-red-700">{i.error}</span>}
                </span>
                {"format" in i && !i.encrypted && <ImportButton pool={i.pool} file={i.file} />}
              </li>
            ))}
          </ul>
        </section>
      )}

      {parts && parts.length > 0 && (
        <section className="card space-y-2 p-4">
          <h2 className="font-semibold">Interrupted uploads</h2>
          <p className="text-sm text-slate-600">
            Choose the same file under the same name below to resume one. Each is removed once it has not grown for a while (the date on the right).
          </p>
          <ul className="divide-y divide-slate-100 text-sm">
            {parts.map((p) => (
              <li key={`${p.pool}/${p.file}`} className="flex items-center justify-between gap-3 py-2" data-testid="upload-part" data-file={p.file}>
                <span>
                  <span className="font-medium">{p.file}</span> in {p.pool} · {formatBytes(p.bytes)} so far
                  {canManageHost(user) && ` · by ${p.owner ?? "unknown"}`} · last written {new Date(p.modifiedAt).toLocaleString()}
                </span>
                <span className="flex items-center gap-3">
                  {p.uploading ? (
                    <span className="text-slate-500">uploading now</span>
                  ) : (
                    <>
                      <span className="text-slate-500" data-testid="part-expires">removed {new Date(p.expiresAt).toLocaleString()}</span>
                      <RemovePartButton pool={p.pool} file={p.file} />
                    </>
                  )}
                </span>
              </li>
            ))}
          </ul>
        </section>
      )}

      <section className="card space-y-3 p-4">
        <h2 className="font-semibold">Upload an image or ISO</h2>
        <UploadForm pools={imagePools.map((p) => p.name)} mayUpload={canCreate(user, user.teamId)} />
      </section>

      <section className="card space-y-3 p-4">
        <h2 className="font-semibold">New disk</h2>
        <CreateDiskForm pools={imagePools.map((p) => p.name)} />
      </section>
    </div>
  );
}
