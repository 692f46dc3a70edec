/**
 * The record of image tasks. The agent runs a task and streams its progress; the web
 * keeps a row per task (who asked, what, how it ended, its log) and, when a task
 * that makes something ends, applies its effect: a conversion's new disk becomes
 * ready, or is removed if the conversion failed. Applying is idempotent, so it is
 * safe from the event stream and from a page that finds a row still "running".
 */
import { randomBytes } from "node:crypto";
import { AgentClient } from "../agent-client";
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import type { TaskStatus } from "../domain/types";
import { refOf, refreshDisk } from "./disks";
import { releaseHold, withinQuota } from "./quotas";

/** What the web does when a task ends. */
/**
 * What a finished task does to the database: its new disk becomes ready (or goes, if
 * the task failed); `removeWhenDone`, an image the task read from goes too either way
 * (an upload that arrived in a format guests do not use, converted).
 */
export type TaskEffect =
  | { type: "ready-when-done"; diskId: string; removeWhenDone?: { pool: string; file: string } }
  /**
   * A web operation that makes image files on a host (a new disk, a new guest's disks):
   * if the web dies before the operation ends, its next start removes those of the
   * files that no disk row took (reconcileTasks), so nothing is left that nobody owns.
   */
  | { type: "remove-unclaimed-when-lost"; files: Array<{ pool: string; file: string }> };

/**
 * Runs a quick operation (create, resize, snapshot, …) that the action waits for,
 * recorded as a running task before it begins and settled when it ends, so the tasks
 * page lists every change and a web killed meanwhile leaves a row that says so. `makes`
 * names the image files the operation may make (see TaskEffect).
 */
export async function recordedTask<T>(
  user: { id: string; teamId?: string },
  hostId: string,
  what: { kind: TaskStatus["kind"]; title: string; diskId?: string | null; makes?: Array<{ pool: string; file: string }>; teamId?: string },
  work: () => Promise<T>,
): Promise<T> {
  const id = `${WEB_TASK_PREFIX}${randomBytes(10).toString("hex")}`;
  const effect: TaskEffect | null = what.makes?.length ? { type: "remove-unclaimed-when-lost", files: what.makes } : null;
  // The team's tasks at once are a quota: the row is written within the check (a delete,
  // which frees things, is never refused by it).
  const teamId = what.teamId ?? user.teamId ?? null;
  const checked = teamId !== null && what.kind !== "delete";
  const data = { id, kind: what.kind, title: what.title, state: "running", effect: effect ? JSON.stringify(effect) : null, hostId, userId: user.id, diskId: what.diskId ?? null, teamId };
  // Written before the work: a row that cannot be written stops an operation that makes files.
  const recorded = checked ? withinQuota({ teamId, userId: user.id }, { tasks: 1 }, (tx) => tx.task.create({ data })) : db.task.create({ data });
  if (effect || checked) await recorded;
  else await recorded.catch((e) => console.error("tasks: could not record a task:", e));
  let state: TaskStatus["state"] = "failed";
  let message: string | null = null;
  try {
    const result = await work();
    state = "succeeded";
    return result;
  } catch (err) {
    message = err instanceof Error ? err.message : String(err);
    throw err;
  } finally {
    await db.task
      .updateMany({ where: { id }, data: { state, progress: state === "succeeded" ? 1 : null, message, finishedAt: new Date() } })
      .catch((e) => console.error("tasks: could not record a task:", e));
  }
}

/** Records a task the agent has just started for this user. */
export async function recordTask(
  userId: string,
  hostId: string,
  task: TaskStatus,
  opts: { diskId?: string | null; effect?: TaskEffect; teamId?: string | null; release?: string | null } = {},
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
      teamId: opts.teamId ?? null,
    },
  });
  // The row counts now against the team's tasks at once: the hold that stood for it goes.
  await releaseHold(opts.release ?? null);
  // The task may have ended before the row existed (a fast failure): settle it now.
  if (task.state !== "running") await settleTask(hostId, task);
}

/**
 * Brings a task's row up to date with the agent's view; once finished, applies its
 * effect exactly once (the row's state changes from "running" in the same update).
 */
export async function settleTask(hostId: string, task: TaskStatus): Promise<void> {
  if (task.id.startsWith(WEB_TASK_PREFIX)) return; // recorded by the code that runs it (server/web/uploads.ts)
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
    if (effect.removeWhenDone) {
      const source = effect.removeWhenDone;
      await new AgentClient(disk.host.endpoint).deleteImage(source).catch((err) => console.error(`tasks: could not remove ${source.pool}/${source.file}:`, err));
    }
    if (task.state === "succeeded") {
      const info = await new AgentClient(disk.host.endpoint).image(refOf(disk)).catch(() => null);
      await db.disk.update({ where: { id: disk.id }, data: { state: "ready" } });
      if (info) await refreshDisk(disk.id, info);
    } else {
      // The agent removed what the task wrote (also a restarted agent: its journal). A file of
      // the row's name is still this task's if one is there (the agent died as it put it in
      // place): the row held the name. Then the row goes too.
      await new AgentClient(disk.host.endpoint).deleteImage(refOf(disk)).catch((err: unknown) => {
        if (!(err instanceof GuesthouseError && err.code === "not-found")) console.error(`tasks: could not remove ${disk.pool}/${disk.file}:`, err);
      });
      await db.disk.delete({ where: { id: disk.id } }).catch((err) => console.error(`tasks: could not remove disk row ${disk.id}:`, err));
    }
  }
}

/** A lost web operation's files that no disk row took are removed (see TaskEffect). */
async function removeUnclaimed(hostId: string, files: Array<{ pool: string; file: string }>): Promise<void> {
  const host = await db.host.findUnique({ where: { id: hostId }, select: { endpoint: true } });
  if (!host) return;
  const agent = new AgentClient(host.endpoint);
  for (const { pool, file } of files) {
    if (await db.disk.findFirst({ where: { hostId, pool, file }, select: { id: true } })) continue;
    await agent.deleteImage({ pool, file }).then(
      () => console.log(`web: removed ${pool}/${file}, made by an operation the web's restart cut off`),
      (err: unknown) => {
        if (!(err instanceof GuesthouseError && err.code === "not-found")) console.error(`web: could not remove ${pool}/${file} left by an interrupted operation:`, err);
      },
    );
  }
}

/** Tasks the web itself runs (uploads it relays) have ids of this form; the agent does not know them. */
export const WEB_TASK_PREFIX = "web-";

/**
 * Rows still "running" are checked against their agents (one call per host): a task
 * that ended while no web process listened is settled now. At the web's own start,
 * its own tasks (uploads) still marked running were cut off by the restart.
 */
export async function reconcileTasks({ atStartup = false } = {}): Promise<void> {
  if (atStartup) {
    const cut = await db.task.findMany({ where: { state: "running", id: { startsWith: WEB_TASK_PREFIX } }, select: { id: true, kind: true, hostId: true, effect: true } });
    for (const row of cut) {
      const message =
        row.kind === "upload"
          ? "The web server restarted during the upload; choose the same file again to resume it."
          : "The web server restarted while this ran; it did not finish, and what it had made was removed.";
      // Only the update that moves the row out of "running" undoes it.
      const { count } = await db.task.updateMany({ where: { id: row.id, state: "running" }, data: { state: "failed", finishedAt: new Date(), message } });
      const effect = count === 1 && row.effect ? (JSON.parse(row.effect) as TaskEffect) : null;
      if (effect?.type === "remove-unclaimed-when-lost") await removeUnclaimed(row.hostId, effect.files);
    }
  }
  const open = await db.task.findMany({
    where: { state: "running", NOT: { id: { startsWith: WEB_TASK_PREFIX } } },
    include: { host: { select: { id: true, endpoint: true } } },
  });
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
          await settleTask(hostId, { ...lostTask(row), state: "failed", message: "The host agent restarted while this task ran; it did not finish." });
        }
      }
    }),
  );
}

/** The agent's view of a task it no longer knows, rebuilt from the web's row. */
function lostTask(row: { id: string; kind: string; title: string; progress: number | null; startedAt: Date; log: string }): TaskStatus {
  return {
    id: row.id,
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
