import { db } from "@/server/db/client";
import { userForSession } from "@/server/auth/sessions";
import { eventStream } from "@/server/web/events";
import { currentSessionSecret, currentUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** The pages' server-sent events (server/web/events.ts): which guests changed, how tasks go. */
export async function GET(request: Request): Promise<Response> {
  const user = await currentUser();
  if (!user) return new Response("Log in first.", { status: 401 });
  const secret = await currentSessionSecret();
  return eventStream(request, user, { style: "page", stillValid: async () => Boolean(await userForSession(db, secret)) });
}
