import { notFound } from "next/navigation";
import { canManageHost } from "@/server/auth/policy";
import { formatBytes } from "@/server/domain/format";
import { agentFor } from "@/server/web/guests";
import { localHost } from "@/server/web/hosts";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/**
 * The host, for admins: what runs guests (accelerator and why, QEMU), its storage folders,
 * where forwards listen, and the network doctor: what on the host would stop managed
 * networks, each with the exact fix.
 */
export default async function HostPage() {
  const user = await requireUser();
  if (!canManageHost(user)) notFound();
  const host = await localHost();
  const agent = agentFor(host);
  const [info, findings] = await Promise.all([agent.host().catch(() => null), agent.networkDoctor().catch(() => null)]);
  return (
    <div className="space-y-6">
      <h1 className="text-2xl font-semibold">Host {info?.hostname ?? host.name}</h1>
      {!info ? (
        <p className="card p-4 text-red-700">The host agent is not reachable. Check that it runs.</p>
      ) : (
        <dl className="card grid gap-x-6 gap-y-2 p-4 text-sm sm:grid-cols-4" data-testid="host-facts">
          <dt className="text-slate-500">Accelerator</dt>
          <dd className="sm:col-span-3">
            {info.accelerator.toUpperCase()}: {info.acceleratorReason}
          </dd>
          <dt className="text-slate-500">QEMU</dt>
          <dd className="sm:col-span-3">{info.qemuVersion}</dd>
          <dt className="text-slate-500">Port forwards</dt>
          <dd className="sm:col-span-3">
            ports {info.forwards.firstPort}–{info.forwards.lastPort} on {info.forwards.address}
          </dd>
          {info.pools.map((p) => (
            <div key={p.name} className="contents">
              <dt className="text-slate-500">Folder {p.name}</dt>
              <dd className="sm:col-span-3">
                {p.content === "isos" ? "ISO images" : "disk images"}, {formatBytes(p.freeBytes)} free of {formatBytes(p.totalBytes)}
              </dd>
            </div>
          ))}
        </dl>
      )}
      <section className="card space-y-2 p-4" aria-label="Network doctor">
        <h2 className="font-semibold">Network doctor</h2>
        {findings === null ? (
          <p className="text-sm text-red-700">The agent did not answer; the host&apos;s networking is unchecked.</p>
        ) : findings.length === 0 ? (
          <p className="text-sm text-green-800" data-testid="doctor-ok">
            Nothing on this host stops managed networks: forwarding is on, tun, nftables and the tools are there, and no other firewall drops their traffic.
          </p>
        ) : (
          <ul className="space-y-3" data-testid="doctor-findings">
            {findings.map((f) => (
              <li key={f.id} className="text-sm" data-testid={`finding-${f.id}`}>
                <p className="font-medium text-red-800">{f.problem}</p>
                <pre className="mt-1 overflow-x-auto rounded bg-slate-900 p-2 text-xs text-slate-100">{f.fix}</pre>
              </li>
            ))}
          </ul>
        )}
      </section>
    </div>
  );
}
