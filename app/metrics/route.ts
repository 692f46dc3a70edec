import { bearerToken, tokenUser } from "@/server/auth/api-tokens";
import type { SessionUser } from "@/server/auth/sessions";
import { db } from "@/server/db/client";
import { toGuesthouseError } from "@/server/domain/errors";
import { EXPOSITION_CONTENT_TYPE } from "@/server/web/metrics/exposition";
import { scrapeText } from "@/server/web/metrics/prometheus";
import { currentUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** What a refused scraper is told to do. */
const HOW = 'Make an API token on your account page (/account); the read scope is enough. Send it as "Authorization: Bearer gh_…"; in Prometheus: authorization: { type: Bearer, credentials_file: <a file holding the token> }.';

const refuse = (status: number, message: string, challenge?: string): Response =>
  new Response(`${message}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...(challenge ? { "www-authenticate": challenge } : {}) },
  });

/**
 * Prometheus's scrape (server/web/metrics/prometheus.ts): with an API token
 * (`Authorization: Bearer gh_…`, any scope), or the browser's session to look at it. The
 * caller sees what the policy lets them see, never more; a disabled user's token is no token.
 */
export async function GET(request: Request): Promise<Response> {
  const authorization = request.headers.get("authorization");
  let user: SessionUser | null;
  if (authorization !== null) {
    const token = bearerToken(authorization);
    if (!token) return refuse(401, `/metrics takes an API token as a bearer token. ${HOW}`, 'Bearer realm="Guesthouse"');
    user = await tokenUser(db, token);
    if (!user) return refuse(401, `The token is unknown, revoked or expired. ${HOW}`, 'Bearer realm="Guesthouse", error="invalid_token"');
  } else {
    user = await currentUser();
    if (!user) return refuse(401, `/metrics needs an API token. ${HOW}`, 'Bearer realm="Guesthouse"');
    if (user.disabled) return refuse(403, "Your account can do nothing until you set it up on your account page.");
  }
  try {
    return new Response(await scrapeText(user), { headers: { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" } });
  } catch (err) {
    const error = toGuesthouseError(err);
    console.error("metrics: /metrics failed:", error.detail ?? error.message);
    return refuse(500, "The metrics could not be gathered; the server's log says why.");
  }
}
