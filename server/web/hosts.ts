/** Hosts known to the web. The embedded setup has one, "local", whose agent runs beside the web. */
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";

export async function localHost() {
  const host = await db.host.findFirst({ where: { name: "local" }, select: { id: true, name: true, endpoint: true } });
  if (!host) throw new GuesthouseError("internal", "No host is set up. Run the setup (see the README).");
  return host;
}
