/** TOTP codes and recovery codes (server/auth/totp.ts), against RFC 6238's own test vector. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Secret } from "otpauth";
import { enrollment, isRecoveryCode, newRecoveryCodes, newTotpSecret, recoveryHash, totpCode, totpStep, TOTP_PERIOD_S } from "../../server/auth/totp";

// RFC 6238, appendix B: the SHA-1 key "12345678901234567890"; at 59 s the 8-digit code is 94287082, so the 6-digit one is 287082.
const RFC_SECRET = Secret.fromLatin1("12345678901234567890").base32;

describe("TOTP", () => {
  test("matches RFC 6238's test vector (SHA-1, 30 s, the last six digits)", () => {
    assert.equal(totpCode(RFC_SECRET, 59_000), "287082");
    assert.equal(totpCode(RFC_SECRET, 1_111_111_109_000), "081804");
    assert.equal(totpStep(RFC_SECRET, "287082", 59_000), 1);
  });

  test("a code of the step before or after is taken (a clock a little off); two steps away is not", () => {
    const now = 1_700_000_000_000;
    const step = Math.floor(now / 1000 / TOTP_PERIOD_S);
    const secret = newTotpSecret();
    assert.equal(totpStep(secret, totpCode(secret, now - 30_000), now), step - 1);
    assert.equal(totpStep(secret, totpCode(secret, now + 30_000), now), step + 1);
    assert.equal(totpStep(secret, totpCode(secret, now - 90_000), now), null);
  });

  test("anything but six digits is no code", () => {
    const secret = newTotpSecret();
    for (const bad of ["", "12345", "1234567", "12a456", " ", "１２３４５６"]) assert.equal(totpStep(secret, bad), null, JSON.stringify(bad));
    assert.notEqual(totpStep(secret, ` ${totpCode(secret).slice(0, 3)} ${totpCode(secret).slice(3)} `), null, "spaces inside are fine");
  });

  test("secrets are 160 bits; the enrolment address names the issuer and the account, and its QR code is an SVG", () => {
    const secret = newTotpSecret();
    assert.equal(Secret.fromBase32(secret).bytes.length, 20);
    assert.notEqual(newTotpSecret(), secret);
    const { uri, qrSvg } = enrollment(secret, "mia");
    assert.match(uri, /^otpauth:\/\/totp\/Guesthouse:mia\?/);
    assert.match(uri, new RegExp(`secret=${secret}`));
    assert.match(qrSvg, /^<svg [^>]*viewBox/);
  });

  test("recovery codes: ten, distinct, xxxxx-xxxxx; the hash ignores case and the dash", () => {
    const codes = newRecoveryCodes();
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const c of codes) {
      assert.match(c, /^[a-z2-7]{5}-[a-z2-7]{5}$/);
      assert.ok(isRecoveryCode(c));
    }
    assert.equal(recoveryHash(codes[0]!), recoveryHash(codes[0]!.toUpperCase().replace("-", "")));
    assert.equal(isRecoveryCode("123456"), false);
  });
});
