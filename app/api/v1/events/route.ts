import { bearerToken, tokenUser } from "@/server/auth/api-tokens";
import { userForSession } from "@/server/auth/sessions";
import { db } from "@/server/db/client";
import { apiRoute } from "@/server/web/api/http";
import { eventStream } from "@/server/web/events";
import { currentSessionSecret } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** `GET /api/v1/events`: server-sent events of the guests and tasks the caller may see (server/web/events.ts). */
export const GET = apiRoute("events", async ({ request, user }) => {
  // The login is asked again as it was first shown: a token revoked or expired, or a session
  // ended, ends the stream (read now: the request's cookies are not there later).
  const token = bearerToken(request.headers.get("authorization"));
  const secret = token ? null : await currentSessionSecret();
  return eventStream(request, user, {
    style: "api",
    stillValid: async () => Boolean(token ? await tokenUser(db, token) : await userForSession(db, secret)),
  });
});
