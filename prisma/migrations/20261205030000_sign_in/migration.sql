-- Signing in: a second factor (TOTP and recovery codes, required per team), and users
-- made by single sign-on (their identity provider's subject).
ALTER TABLE "User" ADD COLUMN "totpSecret" TEXT;
ALTER TABLE "User" ADD COLUMN "totpEnabledAt" DATETIME;
ALTER TABLE "User" ADD COLUMN "totpLastStep" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "User" ADD COLUMN "ssoSubject" TEXT;
CREATE UNIQUE INDEX "User_ssoSubject_key" ON "User"("ssoSubject");
ALTER TABLE "Team" ADD COLUMN "requireTotp" BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE "Session" ADD COLUMN "via" TEXT NOT NULL DEFAULT 'password';

CREATE TABLE "RecoveryCode" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "userId" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "usedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "RecoveryCode_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "RecoveryCode_hash_key" ON "RecoveryCode"("hash");
CREATE INDEX "RecoveryCode_userId_idx" ON "RecoveryCode"("userId");
