/** The API's tasks: those the caller may see, one waited for on request until it ends. */
import type { z } from "zod";
import { taskWhere } from "../../auth/policy";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import { GuesthouseError } from "../../domain/errors";
import type { TaskKind, TaskState } from "../../domain/types";
import { stateHub } from "../state-hub";
import type { task } from "./schemas";

/** How often a wait looks again at the row, in case an update's notice was missed. */
const RECHECK_MS = 1000;

export async function taskFor(user: SessionUser, id: string, waitMs: number): Promise<z.infer<typeof task>> {
  const find = () => db.task.findFirst({ where: { id: String(id).slice(0, 64), ...taskWhere(user) } });
  let row = await find();
  if (!row) throw new GuesthouseError("not-found", "There is no such task, or it is not yours.");
  const deadline = Date.now() + waitMs;
  while (row.state === "running" && Date.now() < deadline) {
    // Woken by the task's own end (the state hub follows every host's tasks), or after a moment.
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const timer = setTimeout(done, Math.min(RECHECK_MS, deadline - Date.now()));
      const off = stateHub.subscribeTasks((_host, t) => {
        if (t.id === row!.id && t.state !== "running") done();
      });
    });
    row = (await find()) ?? row;
  }
  return taskJson(row);
}

/** The caller's tasks (admins: everyone's), newest first. */
export async function listTasks(user: SessionUser, state: TaskState | undefined, limit: number): Promise<Array<z.infer<typeof task>>> {
  const rows = await db.task.findMany({ where: { ...taskWhere(user), ...(state ? { state } : {}) }, orderBy: { startedAt: "desc" }, take: limit });
  return rows.map(taskJson);
}

type TaskRow = NonNullable<Awaited<ReturnType<typeof db.task.findFirst>>>;

function taskJson(row: TaskRow): z.infer<typeof task> {
  return {
    id: row.id,
    kind: row.kind as TaskKind,
    title: row.title,
    state: row.state as TaskState,
    progress: row.progress,
    message: row.message,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}
