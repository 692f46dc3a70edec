import { listGuests } from "@/server/web/api/guests";
import { apiRoute, json } from "@/server/web/api/http";
import { createdGuest } from "@/server/web/api/guest-answers";
import { createGuest } from "@/server/web/guest-ops";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests?page=1&pageSize=100&q=&team=&tag=&template=`: the guests the caller may see, in name order. */
export const GET = apiRoute("listGuests", async ({ user, query }) => json(await listGuests(user, query.page ?? 1, query.pageSize ?? 100, query)));

/** `POST /api/v1/guests` with a definition: a new guest (import is this with an exported definition). */
export const POST = apiRoute("createGuest", async ({ user, body }) => createdGuest(user, await createGuest(user, body, "created through the API")));
