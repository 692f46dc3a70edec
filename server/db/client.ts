/**
 * The one Prisma client of a process (server/db/prisma.ts makes it). On globalThis:
 * the custom server and Next's bundles load this module separately, and a test that
 * drives the web's modules puts its own database's client there before loading them.
 */
import { createPrisma, type PrismaClient } from "./prisma";

export { createPrisma, databaseUrl } from "./prisma";

const globalForPrisma = globalThis as unknown as { guesthousePrisma?: PrismaClient };

export const db: PrismaClient = (globalForPrisma.guesthousePrisma ??= createPrisma());

export type { PrismaClient };
