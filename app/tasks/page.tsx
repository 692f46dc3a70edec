import { LiveTaskBars } from "@/components/task-progress";
import { db } from "@/server/db/client";
import { formatDuration } from "@/server/domain/format";
import { taskWhere } from "@/server/auth/policy";
import { reconcileTasks } from "@/server/web/tasks";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** Running and recent image tasks: who, what, progress, how long, how it ended, its log. */
export default async function TasksPage() {
  const user = await requireUser();
  await reconcileTasks().catch((err) => console.error("tasks page: could not reconcile:", err));
  const tasks = await db.task.findMany({
    where: taskWhere(user),
    orderBy: { startedAt: "desc" },
    take: 100,
    include: { user: { select: { username: true } } },
  });
  const running = tasks.filter((t) => t.state === "running");
  return (
    <div className="space-y-6">
      <h1 className="text-2xl font-semibold">Tasks</h1>
      {running.length > 0 && (
        <section className="card space-y-2 p-4">
          <h2 className="font-semibold">Running</h2>
          <LiveTaskBars initial={running.map(({ id, state, progress, message }) => ({ id, state, progress, message }))} labels={Object.fromEntries(running.map((t) => [t.id, t.title]))} />
        </section>
      )}
      {tasks.length === 0 ? (
        <p className="card p-8 text-center text-slate-600">No tasks yet. Converting, uploading, resizing and snapshotting disks show up here.</p>
      ) : (
        <table className="card w-full overflow-hidden text-left text-sm">
          <thead className="bg-slate-100 text-xs uppercase tracking-wide text-slate-600">
            <tr>
              <th className="px-3 py-2">Started</th>
              <th className="px-3 py-2">Who</th>
              <th className="px-3 py-2">What</th>
              <th className="px-3 py-2">State</th>
              <th className="px-3 py-2">Took</th>
              <th className="px-3 py-2">Result and log</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {tasks.map((t) => {
              const log = JSON.parse(t.log) as string[];
              return (
                <tr key={t.id} data-testid="task-row" data-kind={t.kind} data-state={t.state} className="align-top">
                  <td className="px-3 py-2 whitespace-nowrap">{t.startedAt.toLocaleString()}</td>
                  <td className="px-3 py-2">{t.user?.username ?? "—"}</td>
                  <td className="px-3 py-2">{t.title}</td>
                  <td className={`px-3 py-2 ${t.state === "failed" ? "text-red-700" : t.state === "succeeded" ? "text-emerald-700" : ""}`}>
                    {t.state}
                    {t.state === "running" && t.progress !== null && ` ${Math.floor(t.progress * 100)} %`}
                  </td>
                  <td className="px-3 py-2 whitespace-nowrap">{formatDuration(t.startedAt.getTime(), (t.finishedAt ?? new Date()).getTime())}</td>
                  <td className="px-3 py-2">
                    {t.message}
                    {log.length > 0 && (
                      <details>
                        <summary className="cursor-pointer text-xs text-slate-500">log ({log.length} lines)</summary>
                        <pre className="mt-1 whitespace-pre-wrap text-xs">{log.join("\n")}</pre>
                      </details>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}
