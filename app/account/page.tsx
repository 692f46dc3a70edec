import { ChangePasswordForm, EndSessionButton } from "@/components/people-forms";
import { SecondFactor } from "@/components/second-factor";
import { NewTokenForm, RevokeTokenButton } from "@/components/token-forms";
import { listTokens } from "@/server/auth/api-tokens";
import { db } from "@/server/db/client";
import { sessionsOf } from "@/server/web/people";
import { secondFactorOf } from "@/server/web/second-factor";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** The user's own account: their password, their second factor, and their sessions (ending any). */
export default async function AccountPage() {
  const user = await requireUser({ allowOneTimePassword: true });
  const [sessions, factor, tokens, teams] = await Promise.all([
    sessionsOf(user),
    secondFactorOf(user),
    listTokens(db, user),
    db.team.findMany({ where: { id: { in: [...user.teams.keys()] } }, select: { id: true, name: true }, orderBy: { name: "asc" } }),
  ]);
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
      <section className="card space-y-3 p-4">
        <h2 className="font-semibold">API tokens</h2>
        <p className="text-sm text-slate-600">
          For scripts: <code>Authorization: Bearer gh_…</code> on <a className="text-indigo-700 underline" href="/api/v1/openapi.json">/api/v1</a>. A token acts as you, within its scope
          (read ⊂ operate ⊂ write ⊂ admin) and team, until it expires or you revoke it.
        </p>
        <NewTokenForm teams={teams} />
        {tokens.length > 0 && (
          <table className="w-full text-sm" data-testid="tokens">
            <thead className="text-left text-slate-500">
              <tr>
                <th className="py-1">Name</th>
                <th className="py-1">Scope</th>
                <th className="py-1">Team</th>
                <th className="py-1">Last used</th>
                <th className="py-1">Expires</th>
                <th />
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {tokens.map((t) => (
                <tr key={t.id}>
                  <td className="py-1">{t.name}</td>
                  <td className="py-1">{t.scope}</td>
                  <td className="py-1">{t.team?.name ?? "all"}</td>
                  <td className="py-1">{t.lastUsedAt?.toLocaleString() ?? "never"}</td>
                  <td className="py-1">{t.revokedAt ? "revoked" : t.expiresAt.toLocaleString()}</td>
                  <td className="py-1 text-right">{!t.revokedAt && t.expiresAt > new Date() && <RevokeTokenButton id={t.id} />}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
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
