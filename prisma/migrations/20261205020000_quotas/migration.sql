-- Quotas: limits per team (and per member within it), holds for changes in progress,
-- requests for more; what the counts need (running guests, snapshots, tasks' teams);
-- ISOs private to the team that uploaded them unless published.
ALTER TABLE "Team" ADD COLUMN "quotaSerial" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "Guest" ADD COLUMN "poweredAt" DATETIME;
ALTER TABLE "Disk" ADD COLUMN "snapshotCount" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "Task" ADD COLUMN "teamId" TEXT;
UPDATE "Task" SET "teamId" = (SELECT "teamId" FROM "Disk" WHERE "Disk"."id" = "Task"."diskId");
CREATE INDEX "Task_teamId_state_idx" ON "Task"("teamId", "state");

-- SQLite cannot add a foreign key to a table in place: IsoImage is made again.
CREATE TABLE "new_IsoImage" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "sizeBytes" BIGINT NOT NULL,
    "hostId" TEXT NOT NULL,
    "seenAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sha256" TEXT,
    "teamId" TEXT,
    "uploaderId" TEXT,
    "published" BOOLEAN NOT NULL DEFAULT false,
    CONSTRAINT "IsoImage_hostId_fkey" FOREIGN KEY ("hostId") REFERENCES "Host" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "IsoImage_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "IsoImage_uploaderId_fkey" FOREIGN KEY ("uploaderId") REFERENCES "User" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_IsoImage" ("id", "name", "sizeBytes", "hostId", "seenAt", "sha256") SELECT "id", "name", "sizeBytes", "hostId", "seenAt", "sha256" FROM "IsoImage";
PRAGMA defer_foreign_keys = ON;
DROP TABLE "IsoImage";
ALTER TABLE "new_IsoImage" RENAME TO "IsoImage";
CREATE UNIQUE INDEX "IsoImage_hostId_name_key" ON "IsoImage"("hostId", "name");

CREATE TABLE "Quota" (
    "teamId" TEXT NOT NULL,
    "userId" TEXT NOT NULL DEFAULT '',
    "resource" TEXT NOT NULL,
    "limit" BIGINT NOT NULL,
    PRIMARY KEY ("teamId", "userId", "resource"),
    CONSTRAINT "Quota_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE "QuotaHold" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "teamId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "amounts" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    CONSTRAINT "QuotaHold_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "QuotaHold_teamId_idx" ON "QuotaHold"("teamId");

CREATE TABLE "QuotaRequest" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "teamId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "resource" TEXT NOT NULL,
    "scope" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "reason" TEXT NOT NULL,
    "state" TEXT NOT NULL DEFAULT 'open',
    "note" TEXT NOT NULL DEFAULT '',
    "decidedBy" TEXT,
    "decidedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "QuotaRequest_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "QuotaRequest_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "QuotaRequest_state_createdAt_idx" ON "QuotaRequest"("state", "createdAt");
CREATE INDEX "QuotaRequest_userId_idx" ON "QuotaRequest"("userId");
