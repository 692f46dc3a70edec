import { canManageHost, canSeeTask, ownedWhere } from "@/server/auth/policy";
import { db } from "@/server/db/client";
import { userForSession } from "@/server/auth/sessions";
import { currentSessionSecret, currentUser } from "@/server/web/session";
import { stateHub } from "@/server/web/state-hub";

export const dynamic = "force-dynamic";

/** How often an open stream asks whether its login still holds. */
const SESSION_RECHECK_MS = 3000;

/**
 * Server-sent events: `data: ["<guest id>", …]` whenever guests this user may see
 * change state (admins also get `host:<id>` when a host's agent comes or goes), and
 * `event: task` with `{ id, state, progress, message }` as this user's image tasks
 * (admins: everyone's) move along.
 */
export async function GET(request: Request): Promise<Response> {
  const user = await currentUser();
  if (!user) return new Response("Log in first.", { status: 401 });
  const secret = await currentSessionSecret();
  const encoder = new TextEncoder();
  let unsubscribe = () => {};
  let unsubscribeTasks = () => {};
  /** Task id → may this user see it (asked once per task). */
  const visibleTasks = new Map<string, Promise<boolean>>();
  let keepAlive: NodeJS.Timeout | undefined;
  let recheck: NodeJS.Timeout | undefined;
  let open = true;
  const send = (text: string, controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (open) controller.enqueue(encoder.encode(text));
  };
  const stop = () => {
    open = false;
    unsubscribe();
    unsubscribeTasks();
    clearInterval(keepAlive);
    clearInterval(recheck);
  };

  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      send("retry: 2000\n\n", controller);
      unsubscribe = stateHub.subscribe(async (changed) => {
        const guestIds = changed.filter((id) => !id.startsWith("host:"));
        const visible = guestIds.length
          ? await db.guest.findMany({ where: { id: { in: guestIds }, ...ownedWhere(user, "view") }, select: { id: true } })
          : [];
        const hosts = canManageHost(user) ? changed.filter((id) => id.startsWith("host:")) : [];
        const ids = [...visible.map((g) => g.id), ...hosts];
        if (ids.length) send(`data: ${JSON.stringify(ids)}\n\n`, controller);
      });
      unsubscribeTasks = stateHub.subscribeTasks(async (hostId, task) => {
        let visible = visibleTasks.get(task.id);
        if (!visible) {
          visible = db.task.findFirst({ where: { id: task.id, hostId }, select: { userId: true } }).then((row) => {
            // Not recorded yet (the row is written right after the agent answers): ask again next time.
            if (!row) visibleTasks.delete(task.id);
            return Boolean(row) && canSeeTask(user, row!);
          });
          visibleTasks.set(task.id, visible);
        }
        if (!(await visible)) return;
        const { id, state, progress, message } = task;
        send(`event: task\ndata: ${JSON.stringify({ id, state, progress, message })}\n\n`, controller);
      });
      keepAlive = setInterval(() => send(": keep-alive\n\n", controller), 15_000);
      // The login is asked again while the stream lasts: a logout, a disabled account or a
      // changed password ends it within SESSION_RECHECK_MS.
      recheck = setInterval(() => {
        void userForSession(db, secret).then((still) => {
          if (still || !open) return;
          send("event: ended\ndata: \"Your session has ended.\"\n\n", controller);
          stop();
          controller.close();
        });
      }, SESSION_RECHECK_MS);
      request.signal.addEventListener("abort", () => {
        stop();
        controller.close();
      });
    },
    cancel: stop,
  });
  return new Response(stream, {
    // no-transform: Next's gzip would otherwise hold events back until its buffer fills.
    headers: { "content-type": "text/event-stream", "cache-control": "no-store, no-transform", "x-accel-buffering": "no" },
  });
}
