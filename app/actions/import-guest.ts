"use server";

import { revalidatePath } from "next/cache";
import { parseDefinition } from "@/server/domain/validation";
import { authedAction } from "@/server/web/action";
import { makeGuest } from "@/server/web/guest-factory";
import { localHost } from "@/server/web/hosts";

/** Import: a new guest from an exported definition, with new, empty disks of its sizes. */
export const importGuest = authedAction("import-guest", async (user, text: string) => {
  const definition = parseDefinition(typeof text === "string" ? text : "");
  const guest = await makeGuest(user, await localHost(), definition, undefined, "imported");
  revalidatePath("/");
  return guest;
});
