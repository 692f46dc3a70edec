/**
 * A web process for fault tests: runs the web's own makeGuest (server/web/guest-factory.ts)
 * once against the database in DATABASE_URL, for the test to SIGKILL half-way.
 * Argument: one JSON object { userId, host, definition }; the user is read as a login would.
 */
import type { GuestDefinition } from "../../server/domain/validation";

async function main(): Promise<void> {
  const { userId, host, definition } = JSON.parse(process.argv[2] ?? "{}") as { userId: string; host: { id: string; endpoint: string }; definition: GuestDefinition };
  const { db } = await import("../../server/db/client");
  const { createSession, userForSession } = await import("../../server/auth/sessions");
  const user = await userForSession(db, (await createSession(db, userId)).secret);
  if (!user) throw new Error(`no such user ${userId}`);
  const { makeGuest } = await import("../../server/web/guest-factory");
  const guest = await makeGuest(user, host, definition);
  console.log(JSON.stringify(guest));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
