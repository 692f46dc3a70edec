import Link from "next/link";
import { recentSessions } from "@/server/console/sessions";
import { CONSOLE_KIND_NAMES, viewerName } from "@/server/console/types";
import { db } from "@/server/db/client";
import { formatDuration } from "@/server/domain/format";

function duration(from: string, to: string | null): string {
  return to ? formatDuration(Date.parse(from), Date.parse(to)) : "connected now";
}

/** The guest's consoles (screen, serial, log) and its latest console sessions: who, when, how long. */
export async function ConsoleSessions({ guestId, serial }: { guestId: string; serial: boolean }) {
  const sessions = await recentSessions(db, guestId, 10);
  return (
    <section className="card space-y-3 p-4" data-testid="console-sessions">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 className="font-semibold">Console</h2>
        <div className="flex flex-wrap gap-2 text-sm">
          {serial && (
            <Link href={`/guests/${guestId}/serial`} className="btn">
              Serial terminal
            </Link>
          )}
          <a href={`/guests/${guestId}/serial-log`} className="btn" download>
            Serial log
          </a>
        </div>
      </div>
      {sessions.length === 0 ? (
        <p className="text-sm text-slate-500">Nobody has opened a console of this guest yet.</p>
      ) : (
        <table className="w-full text-left text-sm">
          <thead className="text-xs uppercase tracking-wide text-slate-500">
            <tr>
              <th className="py-1 pr-4">Who</th>
              <th className="py-1 pr-4">Console</th>
              <th className="py-1 pr-4">Started</th>
              <th className="py-1 pr-4">Lasted</th>
              <th className="py-1">Ended</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {sessions.map((s) => (
              <tr key={s.id} data-testid="console-session">
                <td className="py-1 pr-4">{viewerName(s)}</td>
                <td className="py-1 pr-4">
                  {CONSOLE_KIND_NAMES[s.kind]}
                  {s.viewOnly && <span className="text-slate-500">, view only</span>}
                </td>
                <td className="py-1 pr-4 whitespace-nowrap">{new Date(s.startedAt).toLocaleString("en-GB", { timeZone: "UTC" })} UTC</td>
                <td className="py-1 pr-4 whitespace-nowrap">{duration(s.startedAt, s.endedAt)}</td>
                <td className="py-1 text-slate-500">{s.endReason ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
