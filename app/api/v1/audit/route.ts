import { auditEvents } from "@/server/web/api/admin";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `GET /api/v1/audit?user=&team=&action=&target=&from=&to=&limit=`: the trail the caller may read, newest first. */
export const GET = apiRoute("listAudit", async ({ user, query }) => json({ items: await auditEvents(user, query) }));
