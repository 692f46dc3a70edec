import { AnswerForm, AskForm, LimitForm, MemberLimitForm } from "@/components/quota-forms";
import { canAskForMore, canSetQuotas } from "@/server/auth/policy";
import { db } from "@/server/db/client";
import { QUOTA_LABELS, QUOTA_UNITS, type QuotaResource } from "@/server/domain/types";
import { requestsFor, usageOverview, type ResourceUsage } from "@/server/web/quota-admin";
import { quantity } from "@/server/web/quotas";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** A limit as its form shows it: "10", "64G", "2T". */
function editable(resource: QuotaResource, limit: number | null): string {
  if (limit === null) return "";
  const unit = QUOTA_UNITS[resource];
  if (unit === "count") return String(limit);
  const bytes = unit === "mib" ? limit * 2 ** 20 : limit;
  for (const [suffix, size] of [["T", 2 ** 40], ["G", 2 ** 30], ["M", 2 ** 20], ["K", 2 ** 10]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${suffix}`;
  }
  return String(bytes);
}

function UsageBar({ row }: { row: ResourceUsage }) {
  const share = row.limit === null ? 0 : row.limit === 0 ? (row.used > 0 ? 1 : 0) : Math.min(1, row.used / row.limit);
  const colour = share >= 1 ? "bg-red-600" : share >= 0.8 ? "bg-amber-500" : "bg-indigo-600";
  return (
    <div className="flex items-center gap-3" data-testid="usage" data-resource={row.resource} data-used={row.used} data-limit={row.limit ?? ""}>
      <div className="h-2 w-40 overflow-hidden rounded bg-slate-200" role="meter" aria-valuemin={0} aria-valuemax={row.limit ?? undefined} aria-valuenow={row.used} aria-label={QUOTA_LABELS[row.resource]}>
        {row.limit !== null && <div className={`h-full ${colour}`} style={{ width: `${Math.round(share * 100)}%` }} />}
      </div>
      <span className="text-sm text-slate-700">
        {quantity(row.resource, row.used)} {row.limit === null ? "(no limit)" : `of ${quantity(row.resource, row.limit)}`}
      </span>
    </div>
  );
}

/**
 * Quotas: each team's usage against its limits as bars (its members see their teams',
 * admins every team's), limits set by admins, and requests for more: asked here, often
 * straight from a refusal's "Ask for more" link, and answered by admins.
 */
export default async function QuotasPage({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const user = await requireUser();
  const query = await searchParams;
  const one = (k: string) => (typeof query[k] === "string" ? (query[k] as string).slice(0, 64) : undefined);
  const [teams, requests] = await Promise.all([usageOverview(user), requestsFor(user)]);
  const admin = canSetQuotas(user);
  const members = admin
    ? await db.membership.findMany({ where: { teamId: { in: teams.map((t) => t.id) } }, select: { teamId: true, user: { select: { id: true, username: true } } }, orderBy: { user: { username: "asc" } } })
    : [];
  const askable = teams.filter((t) => canAskForMore(user, t.id));
  return (
    <div className="space-y-6">
      <h1 className="text-2xl font-semibold">Quotas</h1>
      {teams.map((team) => (
        <section key={team.id} className="card space-y-3 p-4" data-testid={`quota-team-${team.name}`}>
          <h2 className="text-lg font-semibold">{team.name}</h2>
          <table className="w-full text-sm">
            <tbody className="divide-y divide-slate-100">
              {team.resources.map((row) => (
                <tr key={row.resource}>
                  <td className="w-56 py-1.5 text-slate-600">{QUOTA_LABELS[row.resource]}</td>
                  <td className="py-1.5">
                    <UsageBar row={row} />
                  </td>
                  {admin && (
                    <td className="py-1.5">
                      <LimitForm teamId={team.id} resource={row.resource} current={editable(row.resource, row.limit)} />
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          {team.members.length > 0 && (
            <div className="space-y-1">
              <h3 className="text-sm font-semibold text-slate-600">Members&apos; own use and limits</h3>
              {team.members.map((m) => (
                <div key={m.userId} className="flex flex-wrap items-center gap-x-6 gap-y-1 text-sm" data-testid={`member-quota-${m.username}`}>
                  <span className="w-32 font-medium">{m.username}</span>
                  {m.resources.map((row) => (
                    <span key={row.resource} className="flex items-center gap-2">
                      <span className="text-slate-500">{QUOTA_LABELS[row.resource]}</span>
                      <UsageBar row={row} />
                    </span>
                  ))}
                </div>
              ))}
            </div>
          )}
          {admin && <MemberLimitForm teamId={team.id} members={members.filter((m) => m.teamId === team.id).map((m) => m.user)} />}
        </section>
      ))}

      {askable.length > 0 && (
        <section className="card space-y-2 p-4">
          <h2 className="text-lg font-semibold">Ask for more</h2>
          <AskForm teams={askable} initial={{ team: one("team"), resource: one("resource"), scope: one("scope"), amount: one("amount") }} />
        </section>
      )}

      {admin && (
        <section className="card space-y-2 p-4">
          <h2 className="text-lg font-semibold">Requests waiting for an answer</h2>
          {requests.open.length === 0 ? (
            <p className="text-sm text-slate-600">None.</p>
          ) : (
            <ul className="divide-y divide-slate-100 text-sm">
              {requests.open.map((r) => (
                <li key={r.id} className="space-y-1 py-2" data-testid="open-request">
                  <p>
                    <span className="font-medium">{r.user.username}</span> asks for {quantity(r.resource as QuotaResource, Number(r.amount))} of {QUOTA_LABELS[r.resource as QuotaResource] ?? r.resource} for{" "}
                    {r.scope === "user" ? `themself in ${r.team.name}` : r.team.name}: “{r.reason}”
                  </p>
                  <AnswerForm id={r.id} />
                </li>
              ))}
            </ul>
          )}
        </section>
      )}

      {requests.mine.length > 0 && (
        <section className="card space-y-2 p-4">
          <h2 className="text-lg font-semibold">Your requests</h2>
          <ul className="divide-y divide-slate-100 text-sm">
            {requests.mine.map((r) => (
              <li key={r.id} className="py-2" data-testid="my-request" data-state={r.state}>
                {quantity(r.resource as QuotaResource, Number(r.amount))} of {QUOTA_LABELS[r.resource as QuotaResource] ?? r.resource} for {r.team.name}:{" "}
                <span className={r.state === "approved" ? "text-green-700" : r.state === "declined" ? "text-red-700" : "text-slate-600"}>
                  {r.state === "open" ? "waiting for an admin" : `${r.state} by ${r.decidedBy ?? "an admin"}`}
                </span>
                {r.note && <span className="text-slate-600"> — “{r.note}”</span>}
              </li>
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}
