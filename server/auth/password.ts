/**
 * Password hashing with scrypt (memory-hard, in Node's standard library). Each hash
 * takes 32 MiB and tens of milliseconds of a core, on libuv's small thread pool the web's
 * file and DNS work shares: HASH_SLOTS run at once, MAX_WAITING more wait, and a flood of
 * logins beyond that is refused at once ("busy") instead of stalling the web.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { GuesthouseError } from "../domain/errors";
import { JobSlots } from "../slots";

const HASH_SLOTS = 2;
export const MAX_WAITING_HASHES = 16;
/** The process's slots (on globalThis: Next's bundles load this module separately). */
const globalForHashes = globalThis as unknown as { guesthouseHashSlots?: JobSlots };
const slots: JobSlots = (globalForHashes.guesthouseHashSlots ??= new JobSlots(HASH_SLOTS));

/** Runs one hash in a slot, or refuses when too many wait already. */
async function bounded<T>(work: () => Promise<T>): Promise<T> {
  if (slots.load.waiting >= MAX_WAITING_HASHES) throw new GuesthouseError("busy", "Too many logins at once; try again in a moment.");
  const release = await slots.take();
  try {
    return await work();
  } finally {
    release();
  }
}

const PARAMS = { N: 1 << 15, r: 8, p: 1, keylen: 32 };
const MAXMEM = 64 * 1024 * 1024;

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** Returns `scrypt$N$r$p$salt$hash` (base64url), safe to store. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await bounded(() => scrypt(password, salt, PARAMS.keylen, { N: PARAMS.N, r: PARAMS.r, p: PARAMS.p, maxmem: MAXMEM }));
  return ["scrypt", PARAMS.N, PARAMS.r, PARAMS.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64url");
  const key = await bounded(() =>
    scrypt(password, Buffer.from(salt, "base64url"), expected.length, {
      N: Number(n),
      r: Number(r),
      p: Number(p),
      maxmem: MAXMEM,
    }),
  );
  return timingSafeEqual(key, expected);
}
