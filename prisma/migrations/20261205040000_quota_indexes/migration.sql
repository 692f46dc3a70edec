-- What a quota check reads: a team's disks and ISOs, by team (and owner); its holds.
CREATE INDEX "Disk_teamId_ownerId_idx" ON "Disk"("teamId", "ownerId");
CREATE INDEX "IsoImage_teamId_idx" ON "IsoImage"("teamId");

-- A hold's amounts as columns (summed in the same statement as the rows they stand for).
-- Holds are transient: one in flight while this runs only stops counting early.
DROP TABLE "QuotaHold";
CREATE TABLE "QuotaHold" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "teamId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "guests" INTEGER NOT NULL DEFAULT 0,
    "vcpus" INTEGER NOT NULL DEFAULT 0,
    "memoryMiB" INTEGER NOT NULL DEFAULT 0,
    "diskBytes" BIGINT NOT NULL DEFAULT 0,
    "snapshots" INTEGER NOT NULL DEFAULT 0,
    "isoBytes" BIGINT NOT NULL DEFAULT 0,
    "tasks" INTEGER NOT NULL DEFAULT 0,
    "expiresAt" DATETIME NOT NULL,
    CONSTRAINT "QuotaHold_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "QuotaHold_teamId_idx" ON "QuotaHold"("teamId");
