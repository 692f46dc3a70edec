"use server";

import { revalidatePath } from "next/cache";
import { switchSessionTeam } from "@/server/auth/sessions";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { authedAction } from "@/server/web/action";
import { currentSessionSecret } from "@/server/web/session";

/** Makes a team this session's current one: new guests and disks go to it. */
export const switchTeam = authedAction("switch-team", async (user, teamId: unknown) => {
  if (typeof teamId !== "string" || teamId.length > 64) throw new GuesthouseError("invalid-input", "Choose one of your teams.");
  const secret = await currentSessionSecret();
  if (!secret) throw new GuesthouseError("unauthenticated", "Log in first.");
  await switchSessionTeam(db, secret, user, teamId);
  revalidatePath("/", "layout");
  return null;
});
