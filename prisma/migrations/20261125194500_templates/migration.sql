-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_Guest" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "vcpus" INTEGER NOT NULL,
    "sockets" INTEGER NOT NULL DEFAULT 1,
    "threads" INTEGER NOT NULL DEFAULT 1,
    "memoryMiB" INTEGER NOT NULL,
    "machine" TEXT NOT NULL DEFAULT 'q35',
    "firmware" TEXT NOT NULL DEFAULT 'bios',
    "bootOrder" TEXT NOT NULL DEFAULT 'cdrom,disk',
    "display" TEXT NOT NULL DEFAULT 'std',
    "serial" BOOLEAN NOT NULL DEFAULT true,
    "rtc" TEXT NOT NULL DEFAULT 'utc',
    "description" TEXT NOT NULL DEFAULT '',
    "tags" TEXT NOT NULL DEFAULT '[]',
    "isTemplate" BOOLEAN NOT NULL DEFAULT false,
    "ownerId" TEXT NOT NULL,
    "teamId" TEXT NOT NULL,
    "hostId" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Guest_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "User" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Guest_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Guest_hostId_fkey" FOREIGN KEY ("hostId") REFERENCES "Host" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
INSERT INTO "new_Guest" ("bootOrder", "createdAt", "description", "display", "firmware", "hostId", "id", "machine", "memoryMiB", "name", "ownerId", "rtc", "serial", "sockets", "tags", "teamId", "threads", "updatedAt", "vcpus") SELECT "bootOrder", "createdAt", "description", "display", "firmware", "hostId", "id", "machine", "memoryMiB", "name", "ownerId", "rtc", "serial", "sockets", "tags", "teamId", "threads", "updatedAt", "vcpus" FROM "Guest";
DROP TABLE "Guest";
ALTER TABLE "new_Guest" RENAME TO "Guest";
CREATE UNIQUE INDEX "Guest_teamId_name_key" ON "Guest"("teamId", "name");
CREATE TABLE "new_Disk" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "volume" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "bus" TEXT NOT NULL,
    "cache" TEXT NOT NULL DEFAULT 'none',
    "readOnly" BOOLEAN NOT NULL DEFAULT false,
    "sizeGiB" INTEGER NOT NULL,
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
INSERT INTO "new_Disk" ("bus", "cache", "createdAt", "format", "guestId", "hostId", "id", "ownerId", "position", "readOnly", "sizeGiB", "teamId", "volume") SELECT "bus", "cache", "createdAt", "format", "guestId", "hostId", "id", "ownerId", "position", "readOnly", "sizeGiB", "teamId", "volume" FROM "Disk";
DROP TABLE "Disk";
ALTER TABLE "new_Disk" RENAME TO "Disk";
CREATE UNIQUE INDEX "Disk_volume_key" ON "Disk"("volume");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

