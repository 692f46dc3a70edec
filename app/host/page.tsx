import { notFound } from "next/navigation";
import { canManageHost } from "@/server/auth/policy";
import { AlertBadges } from "@/components/metric-alerts";
import { HostMetrics } from "@/components/host-metrics";
import { formatMetric } from "@/components/metric-units";
import { formatBytes } from "@/server/domain/format";
import type { HostCurrent } from "@/server/domain/metrics";
import { agentFor } from "@/server/web/guests";
import { localHost } from "@/server/web/hosts";
import { hostAlerts, type MetricAlert } from "@/server/web/metrics/thresholds";
import { hostNow } from "@/server/web/metrics/views";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/**
 * The host, for admins: what it uses now (CPU, memory, load, each storage folder's free
 * space, what the running guests were given against what there is) and over time, what
 * runs guests (accelerator and why, QEMU), where forwards listen, and the network doctor:
 * what on the host would stop managed networks, each with the exact fix.
 */
export default async function HostPage() {
  const user = await requireUser();
  if (!canManageHost(user)) notFound();
  const host = await localHost();
  const agent = agentFor(host);
  const [info, findings, now, alerts] = await Promise.all([
    agent.host().catch(() => null),
    agent.networkDoctor().catch(() => null),
    hostNow(user, host.id).catch(() => null),
    hostAlerts(user, host.id).catch((err: unknown) => {
      console.error("web: could not check the host's thresholds:", err);
      return [] as MetricAlert[];
    }),
  ]);
  return (
    <div className="space-y-6">
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="text-2xl font-semibold">Host {info?.hostname ?? host.name}</h1>
        <AlertBadges alerts={alerts} />
      </div>
      {now && <HostNow now={now} alerts={alerts} />}
      <HostMetrics hostId={host.id} cores={now?.cores ?? null} />
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

/** A ratio of what guests were given to what there is: "1.5×". */
const ratio = (given: number | null, there: number) => (given === null || there <= 0 ? "–" : `${(given / there).toFixed(2).replace(/\.?0+$/, "")}×`);

/** The host's figures now: CPU, memory, load, running guests, overcommit, and each storage folder's free space as a bar. */
function HostNow({ now, alerts }: { now: HostCurrent; alerts: MetricAlert[] }) {
  const { sample } = now;
  const memUsed = now.memTotal - now.memAvailable;
  const full = new Set(alerts.filter((a) => a.kind === "folder-space").map((a) => a.subject));
  return (
    <section className="space-y-3" aria-label="Now" data-testid="host-now">
      <dl className="grid gap-3 sm:grid-cols-3 lg:grid-cols-6">
        <Figure label="CPU" value={formatMetric("%", sample.cpu)} hint={`${now.cores} cores`} testId="host-cpu" />
        <Figure label="Memory in use" value={formatBytes(memUsed)} hint={`of ${formatBytes(now.memTotal)}`} testId="host-memory" />
        <Figure label="Load" value={now.load[0].toFixed(2)} hint={`5 min ${now.load[1].toFixed(2)}, 15 min ${now.load[2].toFixed(2)}`} testId="host-load" />
        <Figure label="Running guests" value={String(sample.guests ?? "–")} testId="host-guests" />
        <Figure label="vCPUs given / cores" value={ratio(sample.vcpus, now.cores)} hint={`${sample.vcpus ?? "–"} vCPUs on ${now.cores} cores`} testId="host-vcpu-overcommit" />
        <Figure
          label="Memory given / total"
          value={ratio(sample.memAllocated, now.memTotal)}
          hint={`${sample.memAllocated === null ? "–" : formatBytes(sample.memAllocated)} of ${formatBytes(now.memTotal)}`}
          testId="host-memory-overcommit"
        />
      </dl>
      <div className="card space-y-2 p-4" data-testid="host-folders">
        <h2 className="font-semibold">Storage folders</h2>
        {now.folders.map((f) => {
          const used = f.totalBytes > 0 ? (f.totalBytes - f.freeBytes) / f.totalBytes : 0;
          return (
            <div key={f.pool} className="grid grid-cols-[8rem_1fr_14rem] items-center gap-3 text-sm" data-testid="host-folder" data-pool={f.pool}>
              <span className="font-medium">{f.pool}</span>
              <div
                role="meter"
                aria-valuemin={0}
                aria-valuemax={100}
                aria-valuenow={Math.round(used * 100)}
                aria-label={`${f.pool}: ${Math.round(used * 100)} % used`}
                className="h-2 w-full overflow-hidden rounded-full bg-slate-200"
              >
                <div className={`h-full rounded-full ${full.has(f.pool) || used > 0.9 ? "bg-red-600" : "bg-indigo-600"}`} style={{ width: `${(used * 100).toFixed(1)}%` }} />
              </div>
              <span className="text-slate-600">
                {formatBytes(f.freeBytes)} free of {formatBytes(f.totalBytes)}
              </span>
            </div>
          );
        })}
        {now.pressureUnavailable && <p className="text-xs text-slate-500">Guests&apos; pressure (PSI) cannot be read here: {now.pressureUnavailable}</p>}
      </div>
    </section>
  );
}

function Figure({ label, value, hint, testId }: { label: string; value: string; hint?: string; testId: string }) {
  return (
    <div className="card p-3">
      <dt className="text-xs uppercase tracking-wide text-slate-500">{label}</dt>
      <dd className="text-xl font-semibold" data-testid={testId}>
        {value}
      </dd>
      {hint && <dd className="text-xs text-slate-500">{hint}</dd>}
    </div>
  );
}
