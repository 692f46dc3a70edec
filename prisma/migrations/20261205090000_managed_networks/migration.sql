-- Managed networks (NAT and isolated, run by the host's agent) beside the user-mode one.
ALTER TABLE "Network" ADD COLUMN "subnet" TEXT;
ALTER TABLE "Network" ADD COLUMN "dhcpStart" TEXT;
ALTER TABLE "Network" ADD COLUMN "dhcpEnd" TEXT;
ALTER TABLE "Network" ADD COLUMN "domain" TEXT;
ALTER TABLE "Network" ADD COLUMN "description" TEXT NOT NULL DEFAULT '';
ALTER TABLE "Network" ADD COLUMN "updatedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP;
CREATE INDEX "Network_hostId_idx" ON "Network"("hostId");
