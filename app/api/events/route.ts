import { currentUser } from "@/server/web/session";
import { stateHub } from "@/server/web/state-hub";

export const dynamic = "force-dynamic";

/** Server-sent events: `data: ["<guest id>", …]` whenever guests change state. */
export async function GET(request: Request): Promise<Response> {
  if (!(await currentUser())) return new Response("Log in first.", { status: 401 });
  const encoder = new TextEncoder();
  let unsubscribe = () => {};
  let keepAlive: NodeJS.Timeout | undefined;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode("retry: 2000\n\n"));
      unsubscribe = stateHub.subscribe((changed) => controller.enqueue(encoder.encode(`data: ${JSON.stringify(changed)}\n\n`)));
      keepAlive = setInterval(() => controller.enqueue(encoder.encode(": keep-alive\n\n")), 15_000);
      request.signal.addEventListener("abort", () => {
        unsubscribe();
        clearInterval(keepAlive);
        controller.close();
      });
    },
    cancel() {
      unsubscribe();
      clearInterval(keepAlive);
    },
  });
  return new Response(stream, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no" },
  });
}
