import Link from "next/link";
import { CloneForm } from "@/components/clone-form";
import { ConsoleSessions } from "@/components/console-sessions";
import { CopyButton } from "@/components/copy-button";
import { HandOverForm } from "@/components/hand-over-form";
import { handOverTeamsFor } from "@/server/web/hand-over";
import { MakeTemplateButton } from "@/components/make-template-button";
import { NativeViewer } from "@/components/native-viewer";
import { can } from "@/server/auth/policy";
import { formatBytes, formatMiB } from "@/server/domain/format";
import { GuestActions } from "@/components/guest-actions";
import { GuestMetrics } from "@/components/guest-metrics";
import { HaltNotice } from "@/components/halt-notice";
import { LiveRefresh } from "@/components/live-refresh";
import { NicAddresses } from "@/components/nic-addresses";
import { StateBadge } from "@/components/state-badge";
import { diffSpecs } from "@/server/domain/spec-diff";
import { qemuLives } from "@/server/domain/types";
import { db } from "@/server/db/client";
import { formatCommandLine } from "@/server/qemu/format";
import { cardAddresses } from "@/server/web/guest-list";
import { agentFor, loadGuestOr404, specOf } from "@/server/web/guests";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function GuestPage({ params }: { params: Promise<{ id: string }> }) {
  const user = await requireUser();
  const { id } = await params;
  const guest = await loadGuestOr404(user, id);
  // What this user's role lets them do here (server/auth/policy.ts): the page offers only that.
  const may = { operate: can(user, "operate", guest), change: can(user, "change", guest), delete: can(user, "delete", guest), handOver: can(user, "hand-over", guest) };
  const handOverTeams = may.handOver
    ? await handOverTeamsFor(user)
    : [];
  const agent = agentFor(guest.host);
  const spec = specOf(guest);
  const history = await db.event.findMany({ where: { guestId: guest.id }, orderBy: { at: "desc" }, take: 20 });
  const tags = JSON.parse(guest.tags) as string[];
  const status = await agent.guest(guest.id).catch(() => null);
  // Running: the array QEMU runs with. Otherwise: the array it would run with.
  const argv = status?.argv ?? (await agent.argv(spec).catch(() => null));
  const changes = status?.spec && qemuLives(status.state) ? diffSpecs(status.spec, spec) : [];
  const commandLine = argv ? formatCommandLine(argv, { wrap: true }) : null;

  return (
    <div className="space-y-6">
      <LiveRefresh />
      <div className="flex flex-wrap items-center justify-between gap-4">
        <div className="flex items-center gap-3">
          <h1 className="text-2xl font-semibold" data-testid="guest-name">{guest.name}</h1>
          {guest.isTemplate ? (
            <span data-testid="template-badge" className="rounded-full bg-violet-50 px-2 py-0.5 text-xs font-medium text-violet-800 ring-1 ring-violet-300">
              template
            </span>
          ) : (
            <StateBadge state={status?.state ?? null} />
          )}
        </div>
        {(may.operate || may.delete) && <GuestActions
          guestId={guest.id}
          guestName={guest.name}
          state={status ? (guest.isTemplate ? "template" : status.state) : null}
          since={status?.since ?? 0}
          diskNames={guest.disks.map((d) => `${d.file} (${formatBytes(Number(d.sizeBytes))} ${d.format})`)}
        />}
      </div>

      <HaltNotice status={status} />

      {changes.length > 0 && (
        <section data-testid="pending-changes" className="card border-amber-200 bg-amber-50/50 p-4">
          <h2 className="font-semibold text-amber-900">Pending changes: these apply at the next start</h2>
          <p className="text-xs text-amber-800">Shut down and start the guest, or use Reboot, to apply them.</p>
          <table className="mt-2 text-sm">
            <tbody>
              {changes.map((c) => (
                <tr key={c.what}>
                  <td className="pr-4 font-medium">{c.what}</td>
                  <td className="pr-2 text-slate-500 line-through">{c.from}</td>
                  <td className="pr-2">→</td>
                  <td>{c.to}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}

      <section className="grid gap-4 md:grid-cols-2">
        <div className="card p-4">
          <div className="mb-2 flex items-center justify-between">
            <h2 className="font-semibold">Hardware</h2>
            {!guest.isTemplate && may.change && (
              <Link href={`/guests/${guest.id}/edit`} className="btn">
                Edit hardware
              </Link>
            )}
          </div>
          <dl className="grid grid-cols-[8rem_1fr] gap-y-1 text-sm">
            <dt className="text-slate-500">Machine</dt>
            <dd>
              {spec.machine}, {spec.firmware === "uefi" ? "UEFI (OVMF)" : "BIOS (SeaBIOS)"}
            </dd>
            <dt className="text-slate-500">vCPUs</dt>
            <dd>
              {spec.vcpus}{" "}
              <span className="text-slate-500">
                ({spec.sockets} socket(s) × {spec.vcpus / (spec.sockets * spec.threads)} core(s) × {spec.threads} thread(s))
              </span>
            </dd>
            <dt className="text-slate-500">Memory</dt>
            <dd>{formatMiB(spec.memoryMiB)}</dd>
            <dt className="text-slate-500">Boot order</dt>
            <dd>{spec.bootOrder.join(" → ") || "nothing"}</dd>
            <dt className="text-slate-500">Display</dt>
            <dd>{spec.display}</dd>
            <dt className="text-slate-500">Serial console</dt>
            <dd>{spec.serial ? "on" : "off"}</dd>
            <dt className="text-slate-500">Clock</dt>
            <dd>{spec.rtc === "utc" ? "UTC" : "local time"}</dd>
            <dt className="text-slate-500">Host</dt>
            <dd>{guest.host.name}</dd>
            <dt className="text-slate-500">Owner</dt>
            <dd>{guest.owner.username}</dd>
            {tags.length > 0 && (
              <>
                <dt className="text-slate-500">Tags</dt>
                <dd className="flex flex-wrap gap-1">
                  {tags.map((t) => (
                    <span key={t} className="rounded bg-slate-100 px-1.5 text-xs">{t}</span>
                  ))}
                </dd>
              </>
            )}
          </dl>
          {guest.description && <p className="mt-3 whitespace-pre-wrap text-sm text-slate-700">{guest.description}</p>}
        </div>
        <div className="card p-4">
          <h2 className="mb-2 font-semibold">Devices</h2>
          <ul className="space-y-1 text-sm">
            {guest.disks.map((d) => (
              <li key={d.id}>
                Disk:{" "}
                <Link href={`/disks/${d.id}`} className="text-indigo-700 hover:underline">
                  {d.file}
                </Link>{" "}
                ({formatBytes(Number(d.sizeBytes))} {d.format}
                {d.encrypted && ", encrypted"}), on {d.bus}, cache {d.cache}
                {d.readOnly && ", read-only"}
              </li>
            ))}
            {guest.cdroms.map((c) => (
              <li key={c.id}>CD-ROM: {c.iso.name}</li>
            ))}
            {spec.nics.map((n, i) => (
              <li key={n.mac} data-testid="guest-nic" data-mac={n.mac}>
                {n.mode === "managed" ? (
                  <>
                    Network:{" "}
                    <Link href={`/networks/${n.network}`} className="text-indigo-700 hover:underline">
                      {guest.nics[i]?.network.name ?? n.network}
                    </Link>
                  </>
                ) : (
                  <>Network: user mode{n.isolated ? " (isolated)" : ""}</>
                )}
                , {n.model}, MAC <span className="font-mono">{n.mac}</span>
                {n.mode === "managed" && (
                  <>
                    {" "}
                    · <NicAddresses {...cardAddresses(status, n.mac)} running={status ? qemuLives(status.state) : false} />
                  </>
                )}
                {n.forwards.map((f) => (
                  <span key={`${f.protocol}${f.hostPort}`} className="ml-2 rounded bg-slate-100 px-1.5 text-xs">
                    {f.protocol} host:{f.hostPort} → {f.guestPort}
                  </span>
                ))}
              </li>
            ))}
            {guest.disks.length + guest.cdroms.length + guest.nics.length === 0 && <li>No devices.</li>}
          </ul>
        </div>
      </section>

      {!guest.isTemplate && <ConsoleSessions guestId={guest.id} serial={guest.serial} />}

      {!guest.isTemplate && (
        <GuestMetrics
          guestId={guest.id}
          running={status ? qemuLives(status.state) : false}
          vcpus={spec.vcpus}
          memory={spec.memoryMiB * 1024 * 1024}
          nics={{ count: spec.nics.length, allUserMode: spec.nics.every((n) => n.mode === "user") }}
          diskNames={Object.fromEntries(guest.disks.map((d) => [d.volume, d.file]))}
        />
      )}

      {may.handOver && (
        <section className="card p-4">
          <h2 className="mb-2 font-semibold">Owner: {guest.owner.username}</h2>
          <HandOverForm kind="guest" id={guest.id} teams={handOverTeams} currentTeam={guest.teamId} />
        </section>
      )}

      <section className="card p-4" data-testid="guest-history">
        <h2 className="mb-2 font-semibold">History</h2>
        {history.length === 0 ? (
          <p className="text-sm text-slate-500">Nothing recorded yet.</p>
        ) : (
          <ul className="divide-y divide-slate-100 text-sm">
            {history.map((e) => (
              <li key={e.id} className="flex justify-between gap-4 py-1">
                <span>
                  {e.username ?? "the system"}: {e.message}
                  {!e.ok && <span className="text-red-700"> (failed)</span>}
                </span>
                <span className="whitespace-nowrap text-slate-500">{e.at.toLocaleString()}</span>
              </li>
            ))}
          </ul>
        )}
      </section>

      {!guest.isTemplate && status?.vncTls && may.operate && (
        <NativeViewer guestId={guest.id} host={status.vncTls.host} port={status.vncTls.port} />
      )}

      <section className="card p-4">
        <div className="mb-2 flex items-center justify-between">
          <div>
            <h2 className="font-semibold">QEMU command line</h2>
            <p className="text-xs text-slate-500">
              {status?.argv ? "What QEMU runs with now." : "What the agent will run at the next start."}
            </p>
          </div>
          {commandLine && <CopyButton text={commandLine} />}
        </div>
        <pre data-testid="command-line" className="overflow-x-auto rounded bg-slate-900 p-3 font-mono text-xs leading-relaxed text-slate-100">
          {commandLine ?? "The host agent is not reachable."}
        </pre>
      </section>

      <section className="card space-y-3 p-4">
        <h2 className="font-semibold">{guest.isTemplate ? "New guests from this template" : "Copies"}</h2>
        <div className="flex flex-wrap items-center gap-2">
          <a className="btn" href={`/guests/${guest.id}/definition`} download>
            Export definition (JSON)
          </a>
          {!guest.isTemplate && may.change && status?.state === "stopped" && <MakeTemplateButton guestId={guest.id} guestName={guest.name} />}
        </div>
        {status?.state === "stopped" ? (
          <CloneForm key={guest.isTemplate ? "template" : "guest"} guestId={guest.id} guestName={guest.name} isTemplate={guest.isTemplate} />
        ) : (
          <p className="text-sm text-slate-500">Shut the guest down to clone it or make it a template.</p>
        )}
      </section>

      <p>
        <Link href="/" className="text-sm text-indigo-700 hover:underline">
          ← All guests
        </Link>
      </p>
    </div>
  );
}
