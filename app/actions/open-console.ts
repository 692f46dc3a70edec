"use server";

import { authedAction } from "@/server/web/action";
import { openConsole as open } from "@/server/web/consoles";

/** A single-use ticket for the guest's screen or serial port (server/web/consoles.ts). */
export const openConsole = authedAction("open-console", open);
