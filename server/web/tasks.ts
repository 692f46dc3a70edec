/**
 * The record of image tasks. The agent runs a task and streams its progress; the web
 * keeps a row per task (who asked, what, how it ended, its log) and, when a task
 * that makes something ends, applies its effect: a conversion's new disk becomes
 * ready, or is removed if the conversion failed. Applying is idempotent, so it is
 * safe from the event stream and from a page that finds a row still "running".
 */
import { AgentClient } from "../agent-client";
import { db } from "../db/client";
import type { TaskStatus } from "../domain/types";
import { refreshDisk } from "./disks";

/** What the web does when a task ends. */
export type TaskEffect = { type: "ready-when-done"; diskId: string };

/** Records a task the agent has just started for this user. */
export async function recordTask(
  userId: string,
  hostId: string,
  task: TaskStatus,
  opts: { diskId?: string | null; effect?: TaskEffect } = {},
): Promise<void> {
  await db.task.create({
    data: {
      id: task.id,
      kind: task.kind,
      title: task.title,
      state: task.state,
      progress: task.progress,
      message: task.message,
      log: JSON.stringify(task.log),
      effect: opts.effect ? JSON.stringify(opts.effect) : null,
      startedAt: new Date(task.startedAt),
      finishedAt: task.finishedAt ? new Date(task.finishedAt) : null,
      hostId,
      userId,
      diskId: opts.diskId ?? null,
    },
  });
  // The task may have ended before the row existed (a fast failure): settle it now.
  if (task.state !== "running") await settleTask(hostId, task);
}

/**
 * Brings a task's row up to date with the agent's view; once finished, applies its
 * effect exactly once (the row's state changes from "running" in the same update).
 */
export async function settleTask(hostId: string, task: TaskStatus): Promise<void> {
  const row = await db.task.findFirst({ where: { id: task.id, hostId }, select: { state: true, effect: true } });
  if (!row) return; // a task started by someone else (a test, the agent's own) is not recorded
  const data = {
    state: task.state,
    progress: task.progress,
    message: task.message,
    log: JSON.stringify(task.log),
    finishedAt: task.finishedAt ? new Date(task.finishedAt) : null,
  };
  if (task.state === "running" || row.state !== "running") {
    await db.task.update({ where: { id: task.id }, data });
    return;
  }
  // Only the update that moves the row out of "running" applies the effect.
  const { count } = await db.task.updateMany({ where: { id: task.id, state: "running" }, data });
  if (count === 1 && row.effect) await applyEffect(JSON.parse(row.effect) as TaskEffect, task);
}

async function applyEffect(effect: TaskEffect, task: TaskStatus): Promise<void> {
  if (effect.type === "ready-when-done") {
    const disk = await db.disk.findUnique({ where: { id: effect.diskId }, include: { host: true } });
    if (!disk) return;
    if (task.state === "succeeded") {
      const info = await new AgentClient(disk.host.endpoint).image({ pool: disk.pool, file: disk.file }).catch(() => null);
      await db.disk.update({ where: { id: disk.id }, data: { state: "ready" } });
      if (info) await refreshDisk(disk.id, info);
    } else {
      // The agent removed what the task wrote; the row goes too.
      await db.disk.delete({ where: { id: disk.id } }).catch((err) => console.error(`tasks: could not remove disk row ${disk.id}:`, err));
    }
  }
}

/**
 * Rows still "running" are checked against their agents (one call per host): a task
 * that ended while no web process listened is settled now.
 */
export async function reconcileTasks(): Promise<void> {
  const open = await db.task.findMany({ where: { state: "running" }, select: { id: true, host: { select: { id: true, endpoint: true } } } });
  const hosts = new Map(open.map((t) => [t.host.id, t.host.endpoint]));
  await Promise.all(
    [...hosts].map(async ([hostId, endpoint]) => {
      const tasks = await new AgentClient(endpoint).tasks().catch(() => null);
      if (!tasks) return;
      const byId = new Map(tasks.map((t) => [t.id, t]));
      for (const row of open.filter((t) => t.host.id === hostId)) {
        const task = byId.get(row.id);
        if (task) await settleTask(hostId, task);
        else {
          // The agent restarted and forgot it: whatever it was doing did not finish.
          await settleTask(hostId, { ...(await lostTask(row.id)), state: "failed", message: "The host agent restarted while this task ran; it did not finish." });
        }
      }
    }),
  );
}

async function lostTask(id: string): Promise<TaskStatus> {
  const row = await db.task.findUniqueOrThrow({ where: { id } });
  return {
    id,
    kind: row.kind as TaskStatus["kind"],
    title: row.title,
    targets: [],
    state: "failed",
    progress: row.progress,
    startedAt: row.startedAt.getTime(),
    finishedAt: Date.now(),
    message: null,
    log: JSON.parse(row.log) as string[],
  };
}
