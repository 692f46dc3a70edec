"use server";

import { authedAction } from "@/server/web/action";
import { cloneGuest as clone } from "@/server/web/guest-ops";

/** Clone a guest, full or linked (server/web/guest-ops.ts). */
export const cloneGuest = authedAction("clone-guest", clone);
