/**
 * The second factor: time-based one-time passwords (RFC 6238: SHA-1, 6 digits, 30 s, as
 * every authenticator app reads them) with the `otpauth` library, and single-use recovery
 * codes. A code is taken once: the time step it matched must be later than the last one
 * used (a code seen over a shoulder cannot be replayed within its window).
 */
import { createHash, randomInt } from "node:crypto";
import { Secret, TOTP } from "otpauth";
import { renderSVG } from "uqr";

export const TOTP_PERIOD_S = 30;
export const RECOVERY_CODE_COUNT = 10;
const ISSUER = "Guesthouse";

/** A new shared secret (160 bits, RFC 4226's recommendation), in base32. */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totpOf(secret: string, account: string): TOTP {
  return new TOTP({ issuer: ISSUER, label: account, algorithm: "SHA1", digits: 6, period: TOTP_PERIOD_S, secret: Secret.fromBase32(secret) });
}

/** The `otpauth://` address an app scans, and its QR code as SVG. */
export function enrollment(secret: string, account: string): { uri: string; qrSvg: string } {
  const uri = totpOf(secret, account).toString();
  return { uri, qrSvg: renderSVG(uri, { ecc: "M", border: 2 }) };
}

/**
 * The time step a code matches (this one, or one before or after for a clock a little
 * off), or null. The caller refuses a step not later than the last one used.
 */
export function totpStep(secret: string, code: string, now = Date.now()): number | null {
  const token = code.replace(/\s+/g, "");
  if (!/^\d{6}$/.test(token)) return null;
  const delta = totpOf(secret, "").validate({ token, timestamp: now, window: 1 });
  return delta === null ? null : Math.floor(now / 1000 / TOTP_PERIOD_S) + delta;
}

/** The code of a time (tests, and the enrolment check of a helper app). */
export function totpCode(secret: string, now = Date.now()): string {
  return totpOf(secret, "").generate({ timestamp: now });
}

/** Ten recovery codes, "xxxxx-xxxxx" of base32 (50 bits each), for the person to keep. */
export function newRecoveryCodes(): string[] {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => {
    const text = Array.from({ length: 10 }, () => alphabet[randomInt(alphabet.length)]).join("");
    return `${text.slice(0, 5)}-${text.slice(5)}`;
  });
}

/** What is stored of a recovery code: its SHA-256 (the codes are random, so no slow hash is needed). */
export function recoveryHash(code: string): string {
  return createHash("sha256").update(code.trim().toLowerCase().replace(/[^a-z2-7]/g, "")).digest("hex");
}

/** Whether the text looks like a recovery code rather than a six-digit one. */
export function isRecoveryCode(code: string): boolean {
  return /^[a-z2-7]{5}-?[a-z2-7]{5}$/i.test(code.trim());
}
