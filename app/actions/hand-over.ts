"use server";

import { revalidatePath } from "next/cache";
import { authedAction } from "@/server/web/action";
import { handOverDisk, handOverGuest } from "@/server/web/hand-over";

/** Gives a guest (with its disks) or a free disk to another person, in its team or another. */
export const handOver = authedAction("hand-over", async (user, kind: "guest" | "disk", id: string, username: unknown, teamId: unknown) => {
  const team = typeof teamId === "string" && teamId ? teamId : undefined;
  if (kind === "guest") await handOverGuest(user, id, username, team);
  else await handOverDisk(user, id, username, team);
  revalidatePath("/", "layout");
  return null;
});
