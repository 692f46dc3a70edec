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
      // The server's newest first; tasks it did not know before come ahead of the rest.
      const fresh = initial.filter((t) => !old.has(t.id));
      const next = new Map([...fresh.map((t) => [t.id, t] as const), ...old]);
      for (const t of initial) if (t.state !== "running") next.set(t.id, t);
      return next;
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [initialKey]);
  useEffect(() => {
    const events = new EventSource("/api/events");
    events.addEventListener("task", (e) => {
      const task = JSON.parse((e as MessageEvent<string>).data) as TaskView;
      // A task heard of for the first time is the newest: it goes first.
      setTasks((old) => (old.has(task.id) ? new Map(old).set(task.id, task) : new Map([[task.id, task], ...old])));
      if (task.state !== "running") router.refresh();
    });
    return () => events.close();
  }, [router]);
  return tasks;
}

/** A progress bar with its percentage and a Cancel button while the task runs; one line once it ended. */
export function TaskBar({ task, label }: { task: TaskView; label: string }) {
  const [error, setError] = useState<string | null>(null);
  if (task.state !== "running") {
    const colour = task.state === "failed" ? "text-red-700" : task.state === "cancelled" ? "text-slate-500" : "text-emerald-700";
    return (
      <div className="flex items-baseline justify-between gap-3 text-sm" data-testid="task" data-task={task.id} data-state={task.state}>
        <span>{label}</span>
        <span className={`shrink-0 ${colour}`} title={task.message ?? undefined}>
          {task.state}
          {task.state !== "succeeded" && task.message ? `: ${task.message}` : ""}
        </span>
      </div>
    );
  }
  const percent = task.progress === null ? null : Math.floor(task.progress * 100);
  return (
    <div className="space-y-1" data-testid="task" data-task={task.id} data-state={task.state}>
      <div className="flex items-center justify-between text-sm">
        <span>{label}</span>
        <span className="text-slate-600" data-testid="task-status">
          {/* A queued task says where it stands ("Waiting for a qemu-img slot: 1 job ahead …"). */}
          {task.message ?? (percent === null ? "working…" : `${percent} %`)}
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
          className="h-full bg-indigo-600 transition-[width]"
          style={{ width: `${percent ?? 5}%` }}
        />
      </div>
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
      {error && <p className="text-sm text-red-700" data-testid="action-error">{error}</p>}
    </div>
  );
}

/** The running and recent tasks given by the server, kept live. */
export function LiveTaskBars({ initial, labels }: { initial: TaskView[]; labels: Record<string, string> }) {
  const tasks = useLiveTasks(initial);
  // Running ones first, then the most recent (the map keeps newest first).
  const ordered = [...tasks.values()].sort((a, b) => Number(b.state === "running") - Number(a.state === "running"));
  return (
    <div className="space-y-3">
      {ordered.map((t) => (
        <TaskBar key={t.id} task={t} label={labels[t.id] ?? t.id} />
      ))}
    </div>
  );
}
