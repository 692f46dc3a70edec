import type { Metadata } from "next";
import Link from "next/link";
import "./globals.css";
import { logout } from "./actions/login";
import { TeamSwitcher } from "@/components/team-switcher";
import { db } from "@/server/db/client";
import { canReadAudit } from "@/server/web/audit";
import { currentUser } from "@/server/web/session";

export const metadata: Metadata = {
  title: "Guesthouse",
  description: "QEMU/KVM guests in your browser",
  icons: { icon: "/icon.svg" },
};

export default async function RootLayout({ children }: { children: React.ReactNode }) {
  const user = await currentUser();
  // The user's teams, for the header's switcher (an admin working in a team of no role of theirs sees it too).
  const teams = user
    ? (await db.team.findMany({ where: { id: { in: [...user.teams.keys(), user.teamId] } }, select: { id: true, name: true }, orderBy: { name: "asc" } })).map(
        (t) => ({ ...t, role: user.teams.get(t.id) ?? "admin" }),
      )
    : [];
  return (
    <html lang="en">
      <body>
        <header className="border-b border-slate-800 bg-slate-900 text-slate-100">
          <div className="mx-auto flex max-w-6xl items-center justify-between px-4 py-3">
            <Link href="/" className="text-lg font-semibold tracking-tight">
              Guesthouse
            </Link>
            {user && (
              <nav className="flex items-center gap-4 text-sm">
                <Link href="/" className="hover:text-white">Guests</Link>
                <Link href="/guests/new" className="hover:text-white">New guest</Link>
                <Link href="/disks" className="hover:text-white">Disks</Link>
                <Link href="/networks" className="hover:text-white">Networks</Link>
                <Link href="/top" className="hover:text-white">Top</Link>
                <Link href="/tasks" className="hover:text-white">Tasks</Link>
                <Link href="/teams" className="hover:text-white">Teams</Link>
                <Link href="/quotas" className="hover:text-white">Quotas</Link>
                {user.admin && <Link href="/users" className="hover:text-white">Users</Link>}
                {user.admin && <Link href="/host" className="hover:text-white">Host</Link>}
                {canReadAudit(user) && <Link href="/audit" className="hover:text-white">Audit</Link>}
                <Link href="/docs/api" className="hover:text-white">API</Link>
                <TeamSwitcher teams={teams} current={user.teamId} />
                <span className="text-slate-400">
                  <Link href="/account" className="hover:text-white">{user.username}</Link>
                  {user.admin && <span className="text-slate-500"> (admin)</span>}
                </span>
                <form action={logout}>
                  <button className="rounded border border-slate-600 px-2 py-1 hover:bg-slate-800">Log out</button>
                </form>
              </nav>
            )}
          </div>
        </header>
        <main className="mx-auto max-w-6xl px-4 py-6">{children}</main>
      </body>
    </html>
  );
}
