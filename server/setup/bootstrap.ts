/**
 * First-run setup of the database's fixed rows, safe to run again:
 * the default team, the "local" host (this machine's agent) and the first admin.
 *
 * The admin's password comes from GUESTHOUSE_ADMIN_PASSWORD, or is generated once and
 * kept in `<data folder>/admin-password` (mode 0600) so it can be shown again.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { hashPassword } from "../auth/password";
import { nameKey } from "../domain/names";
import { db } from "../db/client";
import { loadWebConfig } from "../web/config";

async function main(): Promise<void> {
  const config = loadWebConfig();
  const dataDir = path.resolve(process.env.GUESTHOUSE_DATA_DIR ?? ".data");
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  // Write-ahead logging: pages keep reading while a task's progress is written (the
  // default rollback journal makes a reader wait, blocking the event loop, on every write).
  // The mode is kept in the database file, so setting it once here is enough.
  await db.$queryRawUnsafe("PRAGMA journal_mode=WAL");
  const team = await db.team.upsert({ where: { name: "default" }, create: { name: "default", nameKey: nameKey("default") }, update: {} });
  await db.host.upsert({
    where: { name: "local" },
    create: { name: "local", endpoint: config.localAgentEndpoint },
    update: { endpoint: config.localAgentEndpoint },
  });

  const username = process.env.GUESTHOUSE_ADMIN_USER ?? "admin";
  const passwordFile = path.join(dataDir, "admin-password");
  const existing = await db.user.findUnique({ where: { username } });
  const fromEnv = process.env.GUESTHOUSE_ADMIN_PASSWORD;
  if (fromEnv) {
    // The file would now hold a stale password; the environment is the source.
    fs.rmSync(passwordFile, { force: true });
    const passwordHash = await hashPassword(fromEnv);
    if (existing) await db.user.update({ where: { username }, data: { passwordHash } });
    else await db.user.create({ data: { username, passwordHash, role: "admin", usernameKey: nameKey(username), teamId: team.id, memberships: { create: { teamId: team.id, role: "owner" } } } });
    console.log(`setup: log in as "${username}" with the password in GUESTHOUSE_ADMIN_PASSWORD`);
  } else if (!existing) {
    const password = randomBytes(12).toString("base64url");
    await db.user.create({ data: { username, passwordHash: await hashPassword(password), role: "admin", usernameKey: nameKey(username), teamId: team.id, memberships: { create: { teamId: team.id, role: "owner" } } } });
    fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    // Shown once, on the terminal of the person setting up; kept in a root-only file.
    console.log(`setup: created the first admin: log in as "${username}" with password ${password} (kept in ${passwordFile})`);
  } else {
    const where = fs.existsSync(passwordFile) ? `the password in ${passwordFile}` : "the password you set";
    console.log(`setup: log in as "${username}" with ${where}`);
  }
  await db.$disconnect();
}

main().catch((err) => {
  console.error("setup:", err);
  process.exit(1);
});
