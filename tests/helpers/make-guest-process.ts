/**
 * A web process for fault tests: runs the web's own makeGuest (server/web/guest-factory.ts)
 * once against the database in DATABASE_URL, for the test to SIGKILL half-way.
 * Argument: one JSON object { user, host, definition }.
 */
import type { SessionUser } from "../../server/auth/sessions";
import type { GuestDefinition } from "../../server/domain/validation";

async function main(): Promise<void> {
  const { user, host, definition } = JSON.parse(process.argv[2] ?? "{}") as { user: SessionUser; host: { id: string; endpoint: string }; definition: GuestDefinition };
  const { makeGuest } = await import("../../server/web/guest-factory");
  const guest = await makeGuest(user, host, definition);
  console.log(JSON.stringify(guest));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
