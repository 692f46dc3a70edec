-- Teams of several people: a user belongs to any number of teams with one role in each
-- (owner, operator, member, viewer; see server/auth/policy.ts). Every user so far had
-- one team: they keep it, admins as its owners and everyone else as a member.
CREATE TABLE "Membership" (
    "userId" TEXT NOT NULL,
    "teamId" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,

    PRIMARY KEY ("userId", "teamId"),
    CONSTRAINT "Membership_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Membership_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "Membership_teamId_idx" ON "Membership"("teamId");
INSERT INTO "Membership" ("userId", "teamId", "role")
  SELECT "id", "teamId", CASE WHEN "role" = 'admin' THEN 'owner' ELSE 'member' END FROM "User";

-- The team a session works in (the header switches it); none yet means the user's first.
ALTER TABLE "Session" ADD COLUMN "teamId" TEXT;

-- A disabled user keeps their account and guests but may do nothing until enabled again.
ALTER TABLE "User" ADD COLUMN "disabledAt" DATETIME;
