import { apiRoute, json } from "@/server/web/api/http";
import { definitionOf, loadGuest } from "@/server/web/guests";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests/<id>/definition`: what Export writes; `POST /api/v1/guests` takes it back. */
export const GET = apiRoute("getDefinition", async ({ user, params }) => json(definitionOf(await loadGuest(user, params.id!, "view"))));
