import { openApiDocument } from "@/server/web/api/openapi";

export const dynamic = "force-dynamic";

/** The OpenAPI 3.1 document of this API, generated from the schemas the server validates with. Public: it holds no one's data. */
export const GET = () => Response.json(openApiDocument(), { headers: { "cache-control": "no-store" } });
