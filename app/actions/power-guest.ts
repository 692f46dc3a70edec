"use server";

import { authedAction } from "@/server/web/action";
import * as power from "@/server/web/power";

/** Changes a guest's power state (server/web/power.ts). */
export const powerGuest = authedAction("power-guest", power.powerGuest);
