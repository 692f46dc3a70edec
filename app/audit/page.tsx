import Link from "next/link";
import { notFound } from "next/navigation";
import { db } from "@/server/db/client";
import { auditWhere, canReadAudit } from "@/server/web/audit";
import { AUDIT_PAGE_SIZE, auditFilterOf, auditQueryString } from "@/server/web/audit-query";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** The audit trail: every change, newest first, filtered; admins see all, team owners their teams'. */
export default async function AuditPage({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const user = await requireUser();
  if (!canReadAudit(user)) notFound();
  const params = await searchParams;
  const { filter, problems } = auditFilterOf(params);
  const [rows, teams] = await Promise.all([
    db.event.findMany({ where: auditWhere(user, filter), orderBy: { at: "desc" }, take: AUDIT_PAGE_SIZE }),
    db.team.findMany({ where: user.admin ? {} : { id: { in: [...user.teams.keys()] } }, select: { id: true, name: true }, orderBy: { name: "asc" } }),
  ]);
  const teamName = new Map(teams.map((t) => [t.id, t.name]));
  const value = (name: string) => (typeof params[name] === "string" ? (params[name] as string) : "");
  return (
    <div className="space-y-4">
      <h1 className="text-2xl font-semibold">Audit trail</h1>
      <form className="card flex flex-wrap items-end gap-2 p-3 text-sm" aria-label="Filter the audit trail">
        <input name="user" defaultValue={value("user")} placeholder="user" className="field w-32!" aria-label="User" />
        <select name="team" defaultValue={value("team")} className="field w-40!" aria-label="Team">
          <option value="">every team</option>
          {teams.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </select>
        <input name="action" defaultValue={value("action")} placeholder="action, e.g. start" className="field w-40!" aria-label="Action" />
        <input name="target" defaultValue={value("target")} placeholder="target, e.g. a guest's name" className="field w-48!" aria-label="Target" />
        <input name="from" type="date" defaultValue={value("from")} className="field w-40!" aria-label="From" />
        <input name="to" type="date" defaultValue={value("to")} className="field w-40!" aria-label="To" />
        <button className="btn">Filter</button>
        <a className="btn" href={`/audit/export?${auditQueryString(params)}`} data-testid="audit-export">
          Export CSV
        </a>
      </form>
      {problems.map((p) => (
        <p key={p} className="text-sm text-amber-800">
          {p}
        </p>
      ))}
      <table className="card w-full text-sm" data-testid="audit">
        <thead className="text-left text-slate-500">
          <tr>
            <th className="px-3 py-2">When</th>
            <th className="px-3 py-2">Who</th>
            <th className="px-3 py-2">Team</th>
            <th className="px-3 py-2">Action</th>
            <th className="px-3 py-2">What</th>
            <th className="px-3 py-2">From</th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {rows.map((r) => (
            <tr key={r.id} className={r.ok ? "" : "bg-red-50"}>
              <td className="whitespace-nowrap px-3 py-1">{r.at.toLocaleString()}</td>
              <td className="px-3 py-1">
                {r.username ?? "the system"}
                {r.role && <span className="text-slate-500"> ({r.role})</span>}
              </td>
              <td className="px-3 py-1">{(r.teamId && teamName.get(r.teamId)) ?? ""}</td>
              <td className="px-3 py-1">{r.kind}</td>
              <td className="px-3 py-1">
                {r.guestId ? <Link href={`/guests/${r.guestId}`}>{r.message}</Link> : r.message}
                {!r.ok && <span className="text-red-700"> (failed)</span>}
              </td>
              <td className="px-3 py-1">{r.address ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === AUDIT_PAGE_SIZE && <p className="text-sm text-slate-500">The newest {AUDIT_PAGE_SIZE} are shown; narrow the filter or export them all.</p>}
    </div>
  );
}
