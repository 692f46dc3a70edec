-- Managed networks' port forwards and firewall rules (JSON, checked by server/domain/network-rules.ts).
ALTER TABLE "Network" ADD COLUMN "forwards" TEXT NOT NULL DEFAULT '[]';
ALTER TABLE "Network" ADD COLUMN "firewall" TEXT NOT NULL DEFAULT '';
