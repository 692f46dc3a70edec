-- CreateTable
CREATE TABLE "ConsoleShare" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "guestId" TEXT NOT NULL,
    "label" TEXT NOT NULL DEFAULT '',
    "createdById" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" DATETIME NOT NULL,
    "revokedAt" DATETIME,
    CONSTRAINT "ConsoleShare_guestId_fkey" FOREIGN KEY ("guestId") REFERENCES "Guest" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "ConsoleShare_createdById_fkey" FOREIGN KEY ("createdById") REFERENCES "User" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "ConsoleSession" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "guestId" TEXT NOT NULL,
    "userId" TEXT,
    "shareId" TEXT,
    "kind" TEXT NOT NULL,
    "viewOnly" BOOLEAN NOT NULL,
    "startedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "seenAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "endedAt" DATETIME,
    "endReason" TEXT,
    CONSTRAINT "ConsoleSession_guestId_fkey" FOREIGN KEY ("guestId") REFERENCES "Guest" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "ConsoleSession_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "ConsoleSession_shareId_fkey" FOREIGN KEY ("shareId") REFERENCES "ConsoleShare" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);

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
    "keyboardLayout" TEXT NOT NULL DEFAULT 'us',
    CONSTRAINT "Guest_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "User" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Guest_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Guest_hostId_fkey" FOREIGN KEY ("hostId") REFERENCES "Host" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
INSERT INTO "new_Guest" ("bootOrder", "createdAt", "description", "display", "firmware", "hostId", "id", "isTemplate", "machine", "memoryMiB", "name", "ownerId", "rtc", "serial", "sockets", "tags", "teamId", "threads", "updatedAt", "vcpus") SELECT "bootOrder", "createdAt", "description", "display", "firmware", "hostId", "id", "isTemplate", "machine", "memoryMiB", "name", "ownerId", "rtc", "serial", "sockets", "tags", "teamId", "threads", "updatedAt", "vcpus" FROM "Guest";
DROP TABLE "Guest";
ALTER TABLE "new_Guest" RENAME TO "Guest";
CREATE INDEX "Guest_ownerId_idx" ON "Guest"("ownerId");
CREATE INDEX "Guest_hostId_idx" ON "Guest"("hostId");
CREATE UNIQUE INDEX "Guest_teamId_name_key" ON "Guest"("teamId", "name");
CREATE TABLE "new_ConsoleTicket" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "userId" TEXT,
    "shareId" TEXT,
    "guestId" TEXT NOT NULL,
    "kind" TEXT NOT NULL DEFAULT 'vnc',
    "viewOnly" BOOLEAN NOT NULL DEFAULT false,
    "expiresAt" DATETIME NOT NULL,
    "usedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ConsoleTicket_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "ConsoleTicket_shareId_fkey" FOREIGN KEY ("shareId") REFERENCES "ConsoleShare" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "ConsoleTicket_guestId_fkey" FOREIGN KEY ("guestId") REFERENCES "Guest" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_ConsoleTicket" ("createdAt", "expiresAt", "guestId", "id", "usedAt", "userId") SELECT "createdAt", "expiresAt", "guestId", "id", "usedAt", "userId" FROM "ConsoleTicket";
DROP TABLE "ConsoleTicket";
ALTER TABLE "new_ConsoleTicket" RENAME TO "ConsoleTicket";
CREATE INDEX "ConsoleTicket_expiresAt_idx" ON "ConsoleTicket"("expiresAt");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

-- CreateIndex
CREATE INDEX "ConsoleShare_guestId_createdAt_idx" ON "ConsoleShare"("guestId", "createdAt");

-- CreateIndex
CREATE INDEX "ConsoleSession_guestId_startedAt_idx" ON "ConsoleSession"("guestId", "startedAt");

-- CreateIndex
CREATE INDEX "ConsoleSession_endedAt_idx" ON "ConsoleSession"("endedAt");

