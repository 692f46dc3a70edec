import { notFound } from "next/navigation";
import { UserActions } from "@/components/people-forms";
import { canManageHost } from "@/server/auth/policy";
import { allUsers } from "@/server/web/people";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** Every user of the host, for admins: their teams, and disabling, admin rights, deleting. */
export default async function UsersPage() {
  const user = await requireUser();
  if (!canManageHost(user)) notFound();
  const users = await allUsers();
  return (
    <div className="space-y-6">
      <h1 className="text-2xl font-semibold">Users</h1>
      <p className="text-sm text-slate-600">People join through invitation links or accounts their team&apos;s owners make (on the Teams page).</p>
      <table className="card w-full text-sm">
        <thead className="text-left text-slate-500">
          <tr>
            <th className="px-3 py-2">User</th>
            <th className="px-3 py-2">Teams</th>
            <th className="px-3 py-2">Owns</th>
            <th className="px-3 py-2" />
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {users.map((u) => (
            <tr key={u.id} data-testid={`user-${u.username}`}>
              <td className="px-3 py-2">
                {u.username}
                {u.role === "admin" && <span className="text-slate-500"> (admin)</span>}
                {u.disabledAt && <span className="text-red-700"> disabled</span>}
                {u.mustChangePassword && <span className="text-amber-700"> one-time password</span>}
                {u.totpEnabledAt && <span className="text-slate-500"> · two-factor</span>}
                {u.ssoSubject && <span className="text-slate-500"> · single sign-on</span>}
              </td>
              <td className="px-3 py-2">{u.memberships.map((m) => `${m.team.name} (${m.role})`).join(", ") || "none"}</td>
              <td className="px-3 py-2">
                {u._count.guests} guests, {u._count.disks} disks
              </td>
              <td className="px-3 py-2">
                {u.id !== user.id && (
                  <UserActions
                    user={{ id: u.id, username: u.username, disabled: Boolean(u.disabledAt), admin: u.role === "admin", totp: Boolean(u.totpEnabledAt), sso: Boolean(u.ssoSubject) }}
                    heirs={users.filter((h) => h.id !== u.id && !h.disabledAt).map((h) => ({ id: h.id, username: h.username }))}
                  />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
