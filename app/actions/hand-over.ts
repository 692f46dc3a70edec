"use server";

import { revalidatePath } from "next/cache";
import { GuesthouseError } from "@/server/domain/errors";
import { authedAction } from "@/server/web/action";
import { handOverDisk, handOverGuest, handOverIso } from "@/server/web/hand-over";
import { localHost } from "@/server/web/hosts";

/** Gives a guest (with its disks), a free disk or an uploaded ISO (by name) to another person, in its team or another. */
export const handOver = authedAction("hand-over", async (user, kind: "guest" | "disk" | "iso", id: string, username: unknown, teamId: unknown) => {
  const team = typeof teamId === "string" && teamId ? teamId : undefined;
  if (kind === "guest") await handOverGuest(user, id, username, team);
  else if (kind === "disk") await handOverDisk(user, id, username, team);
  else if (kind === "iso") await handOverIso(user, await localHost(), id, username, team);
  else throw new GuesthouseError("invalid-input", "Hand over a guest, a disk or an ISO.");
  revalidatePath("/", "layout");
  return null;
});
