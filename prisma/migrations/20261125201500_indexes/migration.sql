-- CreateIndex
CREATE INDEX "Guest_ownerId_idx" ON "Guest"("ownerId");

-- CreateIndex
CREATE INDEX "Guest_hostId_idx" ON "Guest"("hostId");

-- CreateIndex
CREATE INDEX "Disk_guestId_idx" ON "Disk"("guestId");

-- CreateIndex
CREATE INDEX "Disk_baseId_idx" ON "Disk"("baseId");

-- CreateIndex
CREATE INDEX "Cdrom_guestId_idx" ON "Cdrom"("guestId");

-- CreateIndex
CREATE INDEX "Nic_guestId_idx" ON "Nic"("guestId");

