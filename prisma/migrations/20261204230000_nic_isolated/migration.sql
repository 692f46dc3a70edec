-- A network card can be isolated: user-mode networking with restrict=on (the guest reaches
-- neither the host nor the network through it; port forwards into it still work).
ALTER TABLE "Nic" ADD COLUMN "isolated" BOOLEAN NOT NULL DEFAULT false;
