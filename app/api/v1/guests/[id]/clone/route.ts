import { createdGuest } from "@/server/web/api/guest-answers";
import { apiRoute } from "@/server/web/api/http";
import { cloneGuest } from "@/server/web/guest-ops";

export const dynamic = "force-dynamic";

/** `POST /api/v1/guests/<id>/clone` `{ "name": "…", "mode": "full" | "linked" }`. */
export const POST = apiRoute("cloneGuest", async ({ user, params, body }) => createdGuest(user, await cloneGuest(user, params.id!, body)));
