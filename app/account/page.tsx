import { ChangePasswordForm, EndSessionButton } from "@/components/people-forms";
import { SecondFactor } from "@/components/second-factor";
import { sessionsOf } from "@/server/web/people";
import { secondFactorOf } from "@/server/web/second-factor";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** The user's own account: their password, their second factor, and their sessions (ending any). */
export default async function AccountPage() {
  const user = await requireUser({ allowOneTimePassword: true });
  const [sessions, factor] = await Promise.all([sessionsOf(user), secondFactorOf(user)]);
  return (
    <div className="mx-auto max-w-2xl space-y-6">
      <h1 className="text-2xl font-semibold">Your account: {user.username}</h1>
      {user.mustChangePassword && (
        <p className="card border-amber-200 bg-amber-50 p-3 text-sm" data-testid="choose-password">
          You logged in with a one-time password. Choose your own to go on.
        </p>
      )}
      <section className="card p-4">
        <h2 className="mb-3 font-semibold">Password</h2>
        <ChangePasswordForm />
      </section>
      {user.mustEnrollTotp && (
        <p className="card border-amber-200 bg-amber-50 p-3 text-sm" data-testid="set-up-totp">
          A team of yours requires two-factor login. Set it up below to go on.
        </p>
      )}
      <section className="card p-4">
        <h2 className="mb-3 font-semibold">Two-factor login</h2>
        <SecondFactor enabled={factor.enabledAt !== null} recoveryCodesLeft={factor.recoveryCodesLeft} requiredBy={factor.requiredBy} />
      </section>
      <section className="card p-4">
        <h2 className="mb-3 font-semibold">Sessions</h2>
        <table className="w-full text-sm" data-testid="sessions">
          <thead className="text-left text-slate-500">
            <tr>
              <th className="py-1">Browser</th>
              <th className="py-1">Address</th>
              <th className="py-1">Last seen</th>
              <th />
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {sessions.map((s) => (
              <tr key={s.id}>
                <td className="max-w-xs truncate py-1" title={s.userAgent ?? ""}>
                  {s.userAgent ?? "unknown"} {s.current && <span className="text-emerald-700">(this one)</span>}
                </td>
                <td className="py-1">{s.address ?? "unknown"}</td>
                <td className="py-1">{(s.lastSeenAt ?? s.createdAt).toLocaleString()}</td>
                <td className="py-1 text-right">
                  <EndSessionButton sessionId={s.id} current={s.current} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
