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
import { db } from "../db/client";
import { loadWebConfig } from "../web/config";

async function main(): Promise<void> {
  const config = loadWebConfig();
  const dataDir = path.resolve(process.env.GUESTHOUSE_DATA_DIR ?? ".data");
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  const team = await db.team.upsert({ where: { name: "default" }, create: { name: "default" }, update: {} });
  await db.host.upsert({
    where: { name: "local" },
    create: { name: "local", endpoint: config.localAgentEndpoint },
    update: { endpoint: config.localAgentEndpoint },
  });

  const username = process.env.GUESTHOUSE_ADMIN_USER ?? "admin";
  const passwordFile = path.join(dataDir, "admin-password");
  const existing = await db.user.findUnique({ where: { username } });
  let password = process.env.GUESTHOUSE_ADMIN_PASSWORD;
  if (!existing) {
    if (!password) {
      password = randomBytes(12).toString("base64url");
      fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    }
    await db.user.create({ data: { username, passwordHash: await hashPassword(password), role: "admin", teamId: team.id } });
  } else if (password) {
    await db.user.update({ where: { username }, data: { passwordHash: await hashPassword(password) } });
  }

  const shown = process.env.GUESTHOUSE_ADMIN_PASSWORD
    ? "the password in GUESTHOUSE_ADMIN_PASSWORD"
    : fs.existsSync(passwordFile)
      ? `password ${fs.readFileSync(passwordFile, "utf8").trim()} (kept in ${passwordFile})`
      : "the password you set earlier";
  console.log(`setup: log in as "${username}" with ${shown}`);
  await db.$disconnect();
}

main().catch((err) => {
  console.error("setup:", err);
  process.exit(1);
});
