-- AlterTable
ALTER TABLE "IsoImage" ADD COLUMN "sha256" TEXT;

-- CreateTable
CREATE TABLE "Task" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "kind" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "progress" REAL,
    "message" TEXT,
    "log" TEXT NOT NULL DEFAULT '[]',
    "effect" TEXT,
    "startedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" DATETIME,
    "hostId" TEXT NOT NULL,
    "userId" TEXT,
    "diskId" TEXT,
    CONSTRAINT "Task_hostId_fkey" FOREIGN KEY ("hostId") REFERENCES "Host" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Task_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "Task_diskId_fkey" FOREIGN KEY ("diskId") REFERENCES "Disk" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_Disk" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "volume" TEXT NOT NULL,
    "pool" TEXT NOT NULL DEFAULT 'default',
    "file" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "encrypted" BOOLEAN NOT NULL DEFAULT false,
    "state" TEXT NOT NULL DEFAULT 'ready',
    "sha256" TEXT,
    "bus" TEXT NOT NULL,
    "cache" TEXT NOT NULL DEFAULT 'none',
    "readOnly" BOOLEAN NOT NULL DEFAULT false,
    "sizeBytes" BIGINT NOT NULL,
    "position" INTEGER NOT NULL DEFAULT 0,
    "baseId" TEXT,
    "guestId" TEXT,
    "ownerId" TEXT NOT NULL,
    "teamId" TEXT NOT NULL,
    "hostId" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Disk_baseId_fkey" FOREIGN KEY ("baseId") REFERENCES "Disk" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Disk_guestId_fkey" FOREIGN KEY ("guestId") REFERENCES "Guest" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "Disk_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "User" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Disk_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Disk_hostId_fkey" FOREIGN KEY ("hostId") REFERENCES "Host" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
-- Existing disks lived in the default folder as <volume>.<format>; sizes were whole GiB.
INSERT INTO "new_Disk" ("baseId", "bus", "cache", "createdAt", "format", "guestId", "hostId", "id", "ownerId", "position", "readOnly", "teamId", "volume", "file", "sizeBytes") SELECT "baseId", "bus", "cache", "createdAt", "format", "guestId", "hostId", "id", "ownerId", "position", "readOnly", "teamId", "volume", "volume" || '.' || "format", "sizeGiB" * 1073741824 FROM "Disk";
DROP TABLE "Disk";
ALTER TABLE "new_Disk" RENAME TO "Disk";
CREATE UNIQUE INDEX "Disk_volume_key" ON "Disk"("volume");
CREATE INDEX "Disk_guestId_idx" ON "Disk"("guestId");
CREATE INDEX "Disk_baseId_idx" ON "Disk"("baseId");
CREATE UNIQUE INDEX "Disk_hostId_pool_file_key" ON "Disk"("hostId", "pool", "file");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

-- CreateIndex
CREATE INDEX "Task_startedAt_idx" ON "Task"("startedAt");

-- CreateIndex
CREATE INDEX "Task_userId_idx" ON "Task"("userId");

