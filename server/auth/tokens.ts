/** Random secrets for sessions and console tickets; only their SHA-256 is stored. */
import { createHash, randomBytes } from "node:crypto";

/** 256 bits, base64url: safe in a cookie or a query string. */
export function newSecret(): string {
  return randomBytes(32).toString("base64url");
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}
