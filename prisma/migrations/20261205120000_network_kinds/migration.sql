-- Bridged networks (the host's own bridge an admin names, the VLANs their cards may use),
-- IPv6 on NAT and isolated networks, and a card's VLAN on a bridged network.
ALTER TABLE "Network" ADD COLUMN "ipv6" BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE "Network" ADD COLUMN "bridge" TEXT;
ALTER TABLE "Network" ADD COLUMN "vlans" TEXT NOT NULL DEFAULT '';
ALTER TABLE "Nic" ADD COLUMN "vlan" INTEGER;
