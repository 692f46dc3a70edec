import { userIdNamed } from "@/server/web/api/admin";
import { apiRoute } from "@/server/web/api/http";
import { removeMembership, setMembership } from "@/server/web/teams";

export const dynamic = "force-dynamic";

/** `PUT /api/v1/teams/<id>/members/<username>` `{ "role": "member" }`: adds them, or changes their role. */
export const PUT = apiRoute("setMembership", async ({ user, params, body }) => {
  await setMembership(user, params.id!, params.username!, body.role);
  return new Response(null, { status: 204 });
});

/** `DELETE /api/v1/teams/<id>/members/<username>`: takes them out of the team. */
export const DELETE = apiRoute("removeMembership", async ({ user, params }) => {
  await removeMembership(user, params.id!, await userIdNamed(params.username!));
  return new Response(null, { status: 204 });
});
