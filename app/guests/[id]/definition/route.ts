import { toGuesthouseError } from "@/server/domain/errors";
import { definitionOf, loadGuest } from "@/server/web/guests";
import { currentUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** Export: the guest's definition as a JSON download, importable on any Guesthouse. */
export async function GET(_request: Request, { params }: { params: Promise<{ id: string }> }): Promise<Response> {
  const user = await currentUser();
  if (!user) return new Response("Log in first.", { status: 401 });
  try {
    const guest = await loadGuest(user, (await params).id);
    return new Response(`${JSON.stringify(definitionOf(guest), null, 2)}\n`, {
      headers: {
        "content-type": "application/json",
        "content-disposition": `attachment; filename="${guest.name}.guesthouse.json"`,
        "cache-control": "no-store",
      },
    });
  } catch (err) {
    const error = toGuesthouseError(err);
    return new Response(error.message, { status: error.httpStatus });
  }
}
