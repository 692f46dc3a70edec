import Link from "next/link";
import { formatBytes, formatMiB } from "@/server/domain/format";
import { GuestFigureCell, GuestFiguresProvider } from "@/components/guest-figures";
import { GuestThumbnail } from "@/components/guest-thumbnail";
import { HaltNotice } from "@/components/halt-notice";
import { LiveRefresh } from "@/components/live-refresh";
import { StateBadge } from "@/components/state-badge";
import { ownedWhere } from "@/server/auth/policy";
import { db } from "@/server/db/client";
import { canDo, qemuLives } from "@/server/domain/types";
import { firstIpv4, GUEST_PAGE_SIZE, guestListQuery, pageNumber } from "@/server/web/guest-list";
import { agentFor, liveStates } from "@/server/web/guests";
import { requireUser } from "@/server/web/session";
import { stateHub } from "@/server/web/state-hub";

export const dynamic = "force-dynamic";

export default async function GuestListPage({ searchParams }: { searchParams: Promise<{ page?: string | string[] }> }) {
  const user = await requireUser();
  const page = pageNumber((await searchParams).page);
  const [guests, total] = await Promise.all([
    guestListQuery(db, user, page),
    db.guest.count({ where: ownedWhere(user, "view") }),
  ]);
  const pages = Math.max(1, Math.ceil(total / GUEST_PAGE_SIZE));
  // Whose each guest is, once the list holds any but the user's own (their team's, or all for an admin).
  const showOwner = user.admin || guests.some((g) => g.owner.username !== user.username);
  // Independent reads, side by side: the guests' live states (one call per host) and each
  // host's identity (known to the state hub while it follows the host; else asked).
  const [states, hostInfo] = await Promise.all([
    liveStates(guests),
    db.host
      .findMany({ select: { id: true, name: true, endpoint: true } })
      .then((hosts) =>
        Promise.all(hosts.map(async (h) => ({ name: h.name, info: stateHub.hostIdentity(h.id) ?? (await agentFor(h).host().catch(() => null)) }))),
      ),
  ]);

  const ips = new Map(guests.map((g) => [g.id, firstIpv4(states.get(g.id), g.nics.map((n) => n.mac))]));
  // The rows whose QEMU runs: their CPU and memory figures are read by the page's client, every few seconds.
  const running = new Set(guests.filter((g) => !g.isTemplate && qemuLives(states.get(g.id)?.state ?? "stopped")).map((g) => g.id));

  return (
    <div className="space-y-6">
      <LiveRefresh />
      <div className="flex items-center justify-between">
        <h1 className="text-2xl font-semibold">Guests</h1>
        <Link href="/guests/new" className="btn btn-primary">
          New guest
        </Link>
      </div>
      <ul className="flex flex-wrap gap-3 text-sm">
        {hostInfo.map(({ name, info }) => (
          <li key={name} data-testid="host-info" className="card px-3 py-2">
            <span className="font-medium">Host {name}</span>{" "}
            {info ? (
              <span className="text-slate-600">
                · QEMU {info.qemuVersion} ·{" "}
                <span
                  data-testid="accelerator"
                  title={info.acceleratorReason}
                  className={info.accelerator === "kvm" ? "text-emerald-700" : "text-amber-700"}
                >
                  {info.accelerator === "kvm" ? "KVM (hardware virtualization)" : "TCG (software emulation, slower)"}
                </span>{" "}
                <span className="text-xs text-slate-400">({info.acceleratorReason})</span>
              </span>
            ) : (
              <span className="text-red-700">· agent not reachable</span>
            )}
          </li>
        ))}
      </ul>
      {total === 0 ? (
        <div className="card p-10 text-center text-slate-600">
          No guests yet. <Link href="/guests/new" className="text-indigo-700 underline">Create the first one</Link>.
        </div>
      ) : (
        <GuestFiguresProvider ids={[...running]}>
          <table className="card w-full overflow-hidden text-left text-sm">
            <thead className="bg-slate-100 text-xs uppercase tracking-wide text-slate-600">
              <tr>
                <th className="w-28 px-4 py-2"><span className="sr-only">Screen</span></th>
                <th className="px-4 py-2">Name</th>
                <th className="px-4 py-2">State</th>
                <th className="px-4 py-2">vCPUs</th>
                <th className="px-4 py-2">Memory</th>
                <th className="px-4 py-2">Disks</th>
                <th className="px-4 py-2">Networks</th>
                {showOwner && <th className="px-4 py-2">Owner</th>}
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {guests.map((g) => (
                <tr key={g.id} data-testid="guest-row" data-guest={g.name} className="hover:bg-slate-50">
                  <td className="px-4 py-2">
                    <GuestThumbnail guestId={g.id} name={g.name} running={!g.isTemplate && canDo(states.get(g.id)?.state ?? "stopped", "console")} />
                  </td>
                  <td className="px-4 py-2 font-medium">
                    <Link href={`/guests/${g.id}`} className="text-indigo-700 hover:underline">
                      {g.name}
                    </Link>
                    {(JSON.parse(g.tags) as string[]).map((t) => (
                      <span key={t} className="ml-1 rounded bg-slate-100 px-1.5 text-xs font-normal text-slate-600">
                        {t}
                      </span>
                    ))}
                  </td>
                  <td className="px-4 py-2">
                    {g.isTemplate ? (
                      <span className="rounded-full bg-violet-50 px-2 py-0.5 text-xs font-medium text-violet-800 ring-1 ring-violet-300">template</span>
                    ) : (
                      <>
                        <StateBadge state={states.get(g.id)?.state ?? null} />
                        <HaltNotice status={states.get(g.id) ?? null} compact />
                        {running.has(g.id) && <GuestFigureCell id={g.id} />}
                      </>
                    )}
                  </td>
                  <td className="px-4 py-2">{g.vcpus}</td>
                  <td className="px-4 py-2">{formatMiB(g.memoryMiB)}</td>
                  <td className="px-4 py-2">
                    {[...g.disks.map((d) => `${formatBytes(Number(d.sizeBytes))} ${d.bus}`), ...g.cdroms.map((c) => `CD ${c.iso.name}`)].join(", ") || "none"}
                  </td>
                  <td className="px-4 py-2 text-xs">
                    {/* The first IPv4 address the host sees the guest use on a managed network (its lease, its neighbour entry). */}
                    {ips.get(g.id) && <div data-testid="guest-ip" className="font-mono text-sm text-slate-900">{ips.get(g.id)}</div>}
                    <span className="font-mono text-slate-600">{g.nics.map((n) => `${n.network.mode === "user" ? "user" : n.network.name} · ${n.mac}`).join(", ") || "none"}</span>
                  </td>
                  {showOwner && <td className="px-4 py-2">{g.owner.username}</td>}
                </tr>
              ))}
            </tbody>
          </table>
        </GuestFiguresProvider>
      )}
      {pages > 1 && (
        <nav aria-label="Pages" className="flex items-center justify-between text-sm text-slate-600">
          <span>
            Guests {(page - 1) * GUEST_PAGE_SIZE + 1}–{Math.min(page * GUEST_PAGE_SIZE, total)} of {total}
          </span>
          <span className="flex gap-2">
            {page > 1 && (
              <Link href={`/?page=${page - 1}`} className="btn">
                ← Previous
              </Link>
            )}
            {page < pages && (
              <Link href={`/?page=${page + 1}`} className="btn">
                Next →
              </Link>
            )}
          </span>
        </nav>
      )}
    </div>
  );
}

