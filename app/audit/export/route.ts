import { db } from "@/server/db/client";
import { auditWhere, canReadAudit, csvLine } from "@/server/web/audit";
import { AUDIT_EXPORT_MAX, auditFilterOf } from "@/server/web/audit-query";
import { currentUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** The audit trail as CSV, with the page's filters: who may read it, what they may read. */
export async function GET(request: Request): Promise<Response> {
  const user = await currentUser();
  if (!user) return new Response("Log in first.", { status: 401 });
  if (!canReadAudit(user)) return new Response("Only admins and team owners read the audit trail.", { status: 403 });
  const { filter } = auditFilterOf(Object.fromEntries(new URL(request.url).searchParams));
  const rows = await db.event.findMany({ where: auditWhere(user, filter), orderBy: { at: "desc" }, take: AUDIT_EXPORT_MAX });
  const teams = new Map((await db.team.findMany({ select: { id: true, name: true } })).map((t) => [t.id, t.name]));
  const lines = [
    csvLine(["time", "user", "role", "team", "action", "result", "message", "guest", "parameters", "address"]),
    ...rows.map((r) => csvLine([r.at.toISOString(), r.username, r.role, r.teamId ? (teams.get(r.teamId) ?? r.teamId) : "", r.kind, r.ok ? "ok" : "failed", r.message, r.guestId, r.params, r.address])),
  ];
  return new Response(`${lines.join("\r\n")}\r\n`, {
    headers: {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="guesthouse-audit-${new Date().toISOString().slice(0, 10)}.csv"`,
      "cache-control": "no-store",
    },
  });
}
