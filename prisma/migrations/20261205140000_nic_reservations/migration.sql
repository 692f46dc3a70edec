-- A card's static DHCP reservation and host name on its managed network.
ALTER TABLE "Nic" ADD COLUMN "reservedIp" TEXT;
ALTER TABLE "Nic" ADD COLUMN "hostName" TEXT;
