import { ssoStart } from "@/server/web/sso-routes";

export const dynamic = "force-dynamic";

/** Sends the browser to the identity provider (server/web/sso-routes.ts). */
export const GET = () => ssoStart();
