"use server";

import { parseDefinition } from "@/server/domain/validation";
import { authedAction } from "@/server/web/action";
import { createGuest } from "@/server/web/guest-ops";

/** Import: a new guest from an exported definition, with new, empty disks of its sizes. */
export const importGuest = authedAction("import-guest", async (user, text: string) => createGuest(user, parseDefinition(typeof text === "string" ? text : ""), "imported"));
