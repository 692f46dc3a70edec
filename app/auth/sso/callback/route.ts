import { ssoCallback } from "@/server/web/sso-routes";

export const dynamic = "force-dynamic";

/** Where the identity provider sends the browser back (server/web/sso-routes.ts). */
export const GET = (request: Request) => ssoCallback(request);
