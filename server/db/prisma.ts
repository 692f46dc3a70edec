/** Making Prisma clients: on the embedded SQLite database by default, or on the database a URL names. */
import path from "node:path";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaClient } from "./generated/client";

export function databaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.DATABASE_URL ?? `file:${path.resolve(env.GUESTHOUSE_DATA_DIR ?? ".data", "guesthouse.db")}`;
}

export function createPrisma(url = databaseUrl()): PrismaClient {
  return new PrismaClient({ adapter: passingBlobs(new PrismaBetterSQLite3({ url })) });
}

/**
 * The adapter, with BLOBs handed to Prisma as byte arrays rather than arrays of numbers.
 *
 * `@prisma/adapter-better-sqlite3` 6.19 maps every Buffer that better-sqlite3 returns with
 * `Array.from(new Uint8Array(value))` (its `mapRow`: 25–35 ns a byte and a boxed number each,
 * 12 ms of the 374 KiB a metrics year read fetches); Prisma's client then turns that array
 * back into bytes (`Buffer.from(array)`, base64 and back). The client takes a Uint8Array for a
 * Bytes column as well (its data mapper: `e instanceof Uint8Array`), so each BLOB is passed on
 * as a plain Uint8Array view of the Buffer (not a Buffer, which `mapRow` would convert; the
 * client copies the bytes itself). What a query returns is the same Uint8Array as before.
 *
 * Done on the adapter's `performIO` (the one place its reads go through), on the connection
 * and on each transaction it starts, for columns declared BLOB. Should a later adapter have no `performIO`, it is left
 * as it is: slower, never wrong (tests/integration/metrics-store.test.ts checks that the
 * adapter's rows hold Uint8Arrays and that BLOBs round-trip).
 */
export function passingBlobs(factory: PrismaBetterSQLite3): PrismaBetterSQLite3 {
  const connect = factory.connect.bind(factory);
  factory.connect = async () => {
    const adapter = withBlobViews(await connect());
    const startTransaction = adapter.startTransaction.bind(adapter);
    adapter.startTransaction = async (isolationLevel) => withBlobViews(await startTransaction(isolationLevel));
    return adapter;
  };
  return factory;
}

/** The adapter's internal read (see passingBlobs). */
interface ResultSetIO {
  performIO(query: unknown): Promise<{ declaredTypes: Array<string | null>; values: unknown[][] }>;
}

function withBlobViews<T extends object>(queryable: T): T {
  const io = queryable as unknown as ResultSetIO;
  if (typeof io.performIO !== "function") return queryable;
  const performIO = io.performIO.bind(queryable);
  io.performIO = async (query) => {
    const result = await performIO(query);
    // Only columns declared BLOB: the adapter infers an undeclared column's type from its
    // values and knows no Uint8Array there (it refuses a Buffer there too, as it always did).
    const blobs = (result.declaredTypes ?? []).flatMap((type, i) => (type?.toUpperCase() === "BLOB" ? [i] : []));
    if (blobs.length === 0) return result;
    for (const row of result.values) {
      for (const i of blobs) {
        const value = row[i];
        if (value instanceof Uint8Array) row[i] = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      }
    }
    return result;
  };
  return queryable;
}

export type { PrismaClient };
