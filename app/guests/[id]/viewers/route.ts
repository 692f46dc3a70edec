import { liveViewers } from "@/server/console/sessions";
import { db } from "@/server/db/client";
import { toGuesthouseError } from "@/server/domain/errors";
import { loadGuest } from "@/server/web/guests";
import { currentUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** Who is connected to the guest's consoles right now (the console page polls this). */
export async function GET(_request: Request, { params }: { params: Promise<{ id: string }> }): Promise<Response> {
  const user = await currentUser();
  if (!user) return Response.json({ message: "Log in first." }, { status: 401 });
  try {
    const guest = await loadGuest(user, (await params).id);
    return Response.json({ viewers: await liveViewers(db, guest.id) }, { headers: { "cache-control": "no-store" } });
  } catch (err) {
    const error = toGuesthouseError(err);
    return Response.json({ message: error.message }, { status: error.httpStatus });
  }
}
