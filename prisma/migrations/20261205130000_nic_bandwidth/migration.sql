-- A card's bandwidth limits on a managed network, in Mbit/s (null: none).
ALTER TABLE "Nic" ADD COLUMN "bandwidthInMbit" INTEGER;
ALTER TABLE "Nic" ADD COLUMN "bandwidthOutMbit" INTEGER;
