/**
 * Server-sent events of what a user may see, for the pages (app/api/events) and the
 * REST API (app/api/v1/events): the same filtering for both.
 *
 *   pages: `data: ["<guest id>", …]` whenever guests this user may see change state or
 *          addresses (admins also get `host:<id>` when a host's agent comes or goes), so the
 *          page reloads them;
 *   API:   `event: guest` with `{ id, state }` for each such guest, its state as of now, and
 *          `event: addresses` with `{ id, nics }` when the addresses the host sees its cards
 *          use on managed networks differ from those this stream last sent (`nics`: each card
 *          `{ mac, network, ipv4, ipv6 }`; `[]` once it has none);
 *   both:  `event: task` with `{ id, state, progress, message }` as this user's tasks (admins:
 *          everyone's) move along, and `event: ended` when the login or token stops working.
 */
import { canManageHost, canSeeTask, ownedWhere } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { liveStates } from "./guests";
import { stateHub } from "./state-hub";

/** How often an open stream asks whether its login still holds. */
const RECHECK_MS = 3000;
const KEEP_ALIVE_MS = 15_000;

export function eventStream(request: Request, user: SessionUser, options: { style: "page" | "api"; stillValid: () => Promise<boolean> }): Response {
  const encoder = new TextEncoder();
  let unsubscribe = () => {};
  let unsubscribeTasks = () => {};
  /** Guest id → the addresses this stream last sent of it (API style). */
  const sentAddresses = new Map<string, string>();
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
          ? await db.guest.findMany({ where: { id: { in: guestIds }, ...ownedWhere(user, "view") }, select: { id: true, host: { select: { id: true, endpoint: true } } } })
          : [];
        if (options.style === "api") {
          const states = await liveStates(visible);
          for (const g of visible) {
            const status = states.get(g.id);
            send(`event: guest\ndata: ${JSON.stringify({ id: g.id, state: status?.state ?? null })}\n\n`, controller);
            // Unknown (the host is not reached): nothing said; none any more: said once.
            if (!status?.addresses) continue;
            const nics = JSON.stringify(status.addresses);
            if (nics !== (sentAddresses.get(g.id) ?? "[]")) {
              sentAddresses.set(g.id, nics);
              send(`event: addresses\ndata: ${JSON.stringify({ id: g.id, nics: status.addresses })}\n\n`, controller);
            }
          }
          return;
        }
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
      keepAlive = setInterval(() => send(": keep-alive\n\n", controller), KEEP_ALIVE_MS);
      // The login is asked again while the stream lasts: a logout, a disabled account, a
      // changed password or a revoked token ends it within RECHECK_MS.
      recheck = setInterval(() => {
        void options.stillValid().then((still) => {
          if (still || !open) return;
          send(`event: ended\ndata: ${JSON.stringify(options.style === "api" ? "The token or login stopped working." : "Your session has ended.")}\n\n`, controller);
          stop();
          controller.close();
        });
      }, RECHECK_MS);
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
