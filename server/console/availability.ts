/**
 * Whether a guest's console can be opened now, from its state: "ready" (running,
 * paused or shutting down), "wait" (starting: try again shortly), or "off".
 */
import { canDo, type GuestState } from "../domain/types";

export type ConsoleAvailability = "ready" | "wait" | "off";

export function consoleAvailability(state: GuestState): ConsoleAvailability {
  if (canDo(state, "console")) return "ready";
  return state === "starting" ? "wait" : "off";
}

/** What the console page gets back: a ticket to open the websocket with, or why not now. */
export type ConsoleOpening =
  | { status: "ticket"; path: string; ticket: string; viewOnly: boolean }
  | { status: "wait"; state: GuestState; message: string }
  | { status: "off"; state: GuestState; message: string };

export function unavailable(name: string, state: GuestState): ConsoleOpening {
  const availability = consoleAvailability(state);
  return availability === "wait"
    ? { status: "wait", state, message: `${name} is starting.` }
    : { status: "off", state, message: `${name} is ${state}; start it to use its console.` };
}
