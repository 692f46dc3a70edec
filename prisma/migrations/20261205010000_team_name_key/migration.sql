-- A team's name is unique regardless of case and width: "Ops", "ops" and "ｏｐｓ" are one
-- name. nameKey holds the folded name (server/web/teams.ts); names made before it are
-- folded here as SQLite can (ASCII case).
ALTER TABLE "Team" ADD COLUMN "nameKey" TEXT;
UPDATE "Team" SET "nameKey" = lower("name");
CREATE UNIQUE INDEX "Team_nameKey_key" ON "Team"("nameKey");
