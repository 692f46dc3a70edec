"use client";

import { useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { cancelTask } from "@/app/actions/disks";

export interface TaskView {
  id: string;
  state: string;
  progress: number | null;
  message: string | null;
}

/**
 * Follows image tasks live over the page's server-sent events (`event: task`), so a
 * progress bar moves without reloading; when a task ends, the page's server parts
 * are refreshed (a converted disk becomes ready, a size changes).
 */
export function useLiveTasks(initial: TaskView[]): Map<string, TaskView> {
  const router = useRouter();
  const [tasks, setTasks] = useState(() => new Map(initial.map((t) => [t.id, t])));
  // A refresh brings the server's list again (a task started meanwhile): take its new entries.
  const initialKey = initial.map((t) => `${t.id}:${t.state}`).join(",");
  useEffect(() => {
    setTasks((old) => {
      const next = new Map(old);
      for (const t of initial) if (!next.has(t.id) || t.state !== "running") next.set(t.id, t);
      return next;
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [initialKey]);
  useEffect(() => {
    const events = new EventSource("/api/events");
    events.addEventListener("task", (e) => {
      const task = JSON.parse((e as MessageEvent<string>).data) as TaskView;
      setTasks((old) => new Map(old).set(task.id, task));
      if (task.state !== "running") router.refresh();
    });
    return () => events.close();
  }, [router]);
  return tasks;
}

/** A progress bar with its percentage and a Cancel button while the task runs. */
export function TaskBar({ task, label }: { task: TaskView; label: string }) {
  const [error, setError] = useState<string | null>(null);
  const percent = task.progress === null ? null : Math.floor(task.progress * 100);
  return (
    <div className="space-y-1" data-testid="task" data-task={task.id} data-state={task.state}>
      <div className="flex items-center justify-between text-sm">
        <span>{label}</span>
        <span className="text-slate-600">
          {task.state === "running" ? (percent === null ? "working…" : `${percent} %`) : task.state}
        </span>
      </div>
      <div
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent ?? undefined}
        className="h-2 overflow-hidden rounded bg-slate-200"
      >
        <div
          className={`h-full transition-[width] ${task.state === "failed" ? "bg-red-500" : task.state === "cancelled" ? "bg-slate-400" : "bg-indigo-600"}`}
          style={{ width: `${task.state === "succeeded" ? 100 : (percent ?? 5)}%` }}
        />
      </div>
      {task.message && task.state !== "running" && <p className="text-xs text-slate-600">{task.message}</p>}
      {task.state === "running" && (
        <button
          type="button"
          className="btn btn-danger"
          onClick={async () => {
            const result = await cancelTask(task.id);
            if (!result.ok) setError(result.error);
          }}
        >
          Cancel
        </button>
      )}
      {error && <p className="text-sm text-red-700" data-testid="action-error">{error}</p>}
    </div>
  );
}

/** The running and recent tasks given by the server, kept live. */
export function LiveTaskBars({ initial, labels }: { initial: TaskView[]; labels: Record<string, string> }) {
  const tasks = useLiveTasks(initial);
  return (
    <div className="space-y-3">
      {[...tasks.values()].map((t) => (
        <TaskBar key={t.id} task={t} label={labels[t.id] ?? t.id} />
      ))}
    </div>
  );
}
