/** Making Prisma clients: on the embedded SQLite database by default, or on the database a URL names. */
import path from "node:path";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaClient } from "./generated/client";

export function databaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.DATABASE_URL ?? `file:${path.resolve(env.GUESTHOUSE_DATA_DIR ?? ".data", "guesthouse.db")}`;
}

export function createPrisma(url = databaseUrl()): PrismaClient {
  return new PrismaClient({ adapter: new PrismaBetterSQLite3({ url }) });
}

export type { PrismaClient };
