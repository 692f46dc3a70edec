"use server";

import { keyboardLayoutOf, textToKeystrokes } from "@/server/domain/keymaps";
import { GuesthouseError } from "@/server/domain/errors";
import { canDo, PASTE_MAX_CHARS } from "@/server/domain/types";
import { authedAction } from "@/server/web/action";
import { agentFor, liveState, loadGuest } from "@/server/web/guests";
import { recordEvent } from "@/server/web/audit";
import { recordTask } from "@/server/web/tasks";

/**
 * Types text into the guest as key presses (QMP input-send-event), translated for the
 * guest's keyboard layout. It runs as a task on the host: the page follows its
 * progress and can cancel it (the task record's Cancel). Characters the layout cannot
 * type are refused up front, naming each, so nothing half-typed reaches the guest.
 */
export const pasteText = authedAction("paste-text", async (user, guestId: string, text: string) => {
  if (typeof text !== "string" || text.length === 0) throw new GuesthouseError("invalid-input", "There is nothing to paste.");
  if (text.length > PASTE_MAX_CHARS) {
    throw new GuesthouseError("invalid-input", `A paste can have at most ${PASTE_MAX_CHARS.toLocaleString("en")} characters.`);
  }
  const guest = await loadGuest(user, guestId, "operate");
  const layout = keyboardLayoutOf(guest.keyboardLayout);
  // Throws, naming every character this layout has no key for (the page warned already).
  textToKeystrokes(text, layout);
  const { state } = await liveState(guest);
  if (!canDo(state, "console") || state === "paused") {
    throw new GuesthouseError("conflict", `${guest.name} is ${state}; it must be running to take typed text.`);
  }
  const task = await agentFor(guest.host).typeText(guest.id, text, layout);
  await recordTask(user.id, guest.host.id, task);
  await recordEvent("console-paste", true, `typed ${text.length} characters into ${guest.name}`, user, guest.id).catch(() => {});
  return { id: task.id, state: task.state, progress: task.progress, message: task.message };
});
