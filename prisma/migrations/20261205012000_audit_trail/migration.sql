-- The audit trail: who acted (as named then), in which role and team, with which
-- parameters (secrets left out), from which address.
ALTER TABLE "Event" ADD COLUMN "username" TEXT;
ALTER TABLE "Event" ADD COLUMN "role" TEXT;
ALTER TABLE "Event" ADD COLUMN "teamId" TEXT;
ALTER TABLE "Event" ADD COLUMN "params" TEXT;
ALTER TABLE "Event" ADD COLUMN "address" TEXT;
UPDATE "Event" SET "username" = (SELECT "username" FROM "User" WHERE "User"."id" = "Event"."userId");
UPDATE "Event" SET "teamId" = (SELECT "teamId" FROM "Guest" WHERE "Guest"."id" = "Event"."guestId");
CREATE INDEX "Event_at_idx" ON "Event"("at");
CREATE INDEX "Event_teamId_at_idx" ON "Event"("teamId", "at");
