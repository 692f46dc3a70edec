import { notFound } from "next/navigation";
import { InviteForm, NewAccountForm, RevokeInviteButton } from "@/components/people-forms";
import { MemberForm, NewTeamForm, RemoveMemberButton, RenameTeamForm, RequireTotpButton, ThresholdsForm } from "@/components/team-forms";
import { thresholdsOf } from "@/server/web/metrics/thresholds";
import { openInvites } from "@/server/web/people";
import { canManageHost } from "@/server/auth/policy";
import { teamsFor } from "@/server/web/teams";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** Teams: their members and roles; owners manage theirs, admins all and make new ones. */
export default async function TeamsPage() {
  const user = await requireUser();
  const teams = await teamsFor(user);
  const invites = new Map(await Promise.all(teams.filter((t) => t.manage).map(async (t) => [t.id, await openInvites(t.id)] as const)));
  if (teams.length === 0 && !canManageHost(user)) notFound();
  const thresholds = await thresholdsOf(teams.filter((t) => t.manage).map((t) => t.id));
  return (
    <div className="space-y-6">
      <h1 className="text-2xl font-semibold">Teams</h1>
      {canManageHost(user) && (
        <section className="card p-4">
          <NewTeamForm />
        </section>
      )}
      {teams.map((team) => (
        <section key={team.id} className="card space-y-3 p-4" data-testid={`team-${team.name}`}>
          <div className="flex items-baseline justify-between">
            <h2 className="text-lg font-semibold">{team.name}</h2>
            <span className="text-sm text-slate-500">
              {team._count.guests} guests · {team._count.disks} disks{team.requireTotp ? " · two-factor login required" : ""}
            </span>
          </div>
          <table className="w-full text-sm">
            <thead className="text-left text-slate-500">
              <tr>
                <th className="py-1">User</th>
                <th className="py-1">Role</th>
                {team.manage && <th className="py-1" />}
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {team.memberships.map((m) => (
                <tr key={m.user.id}>
                  <td className="py-1">{m.user.username}</td>
                  <td className="py-1">{m.role}</td>
                  {team.manage && (
                    <td className="py-1 text-right">
                      <RemoveMemberButton teamId={team.id} userId={m.user.id} username={m.user.username} />
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          {team.manage && (
            <div className="space-y-3 border-t border-slate-100 pt-3">
              {canManageHost(user) && <RenameTeamForm teamId={team.id} name={team.name} />}
              <MemberForm teamId={team.id} />
              <RequireTotpButton teamId={team.id} required={team.requireTotp} />
              <InviteForm teamId={team.id} />
              <NewAccountForm teamId={team.id} />
              <ThresholdsForm teamId={team.id} thresholds={thresholds.get(team.id)!} />
              {(invites.get(team.id) ?? []).length > 0 && (
                <ul className="text-sm" data-testid="open-invites">
                  {(invites.get(team.id) ?? []).map((i) => (
                    <li key={i.id} className="flex items-center justify-between py-1">
                      <span>
                        an invitation as {i.role}, by {i.createdBy?.username ?? "someone gone"}, until {i.expiresAt.toLocaleString()}
                      </span>
                      <RevokeInviteButton inviteId={i.id} />
                    </li>
                  ))}
                </ul>
              )}
            </div>
          )}
        </section>
      ))}
    </div>
  );
}
