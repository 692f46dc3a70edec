/**
 * Paste as keystrokes: text typed into a running guest through QMP `input-send-event`,
 * key by key, as a task (progress = characters typed / all, cancellable, one paste per
 * guest at a time: the task holds `guest:<id>`).
 *
 * The text becomes key presses for the guest's keyboard layout in server/domain/keymaps.ts
 * (which refuses text with characters the layout cannot type, before anything is typed).
 * Each press (modifiers, key down, key up, modifiers up) is one `input-send-event`, so a
 * press is never cut in half: a paste stopped midway leaves no key or modifier held down.
 * Presses are paced KEY_INTERVAL_MS apart: a guest reads its keyboard's small queue
 * (a PS/2 controller holds 16 bytes) only so fast, and a paste faster than that loses keys.
 */
import { GuesthouseError } from "../domain/errors";
import { KEYBOARD_LAYOUT_NAMES, normalize, qmpEventsFor, textToKeystrokes, type KeyboardLayout, type Keystroke } from "../domain/keymaps";
import type { TaskStatus } from "../domain/types";
import type { Supervisor } from "./supervisor";
import type { TaskContext, Tasks } from "./tasks";

/** The pause after each key press. */
export const KEY_INTERVAL_MS = 15;

export class Paste {
  constructor(
    private readonly supervisor: Pick<Supervisor, "consoleOf">,
    private readonly tasks: Tasks,
  ) {}

  /** Starts typing `text` into the guest; resolves with the running task. */
  type(guestId: string, text: string, layout: KeyboardLayout): TaskStatus {
    const target = this.supervisor.consoleOf(guestId);
    if (target.state !== "running") {
      throw new GuesthouseError("conflict", `This guest is ${target.state}; text can be typed only while it runs.`);
    }
    const strokes = textToKeystrokes(text, layout); // refuses untypeable text before anything is typed
    const characters = [...normalize(text)].length;
    const name = target.spec?.name ?? guestId;
    const title = `Typing ${characters} character${characters === 1 ? "" : "s"} into ${name} (${KEYBOARD_LAYOUT_NAMES[layout]})`;
    const { status } = this.tasks.start("paste", title, [`guest:${guestId}`], (ctx) => this.typeAll(guestId, strokes, ctx));
    return status;
  }

  private async typeAll(guestId: string, strokes: Keystroke[], ctx: TaskContext): Promise<string> {
    const total = strokes.length;
    for (let i = 0; i < total; i++) {
      if (ctx.signal.aborted) {
        ctx.cancelled(`Stopped after ${i} of ${total} key presses; what was typed stays typed.`);
        throw ctx.signal.reason;
      }
      let target;
      try {
        target = this.supervisor.consoleOf(guestId);
      } catch {
        target = null;
      }
      if (!target || target.state !== "running") {
        throw new GuesthouseError(
          "conflict",
          `The guest ${target ? `was ${target.state}` : "stopped"} after ${i} of ${total} key presses; the rest was not typed.`,
        );
      }
      try {
        await target.qmp.execute("input-send-event", { events: qmpEventsFor(strokes[i]!) });
      } catch (err) {
        const why = err instanceof GuesthouseError ? err.message : String(err);
        throw new GuesthouseError("qmp-error", `Typing stopped after ${i} of ${total} key presses: ${why}`);
      }
      ctx.progress((i + 1) / total);
      await sleep(KEY_INTERVAL_MS, ctx.signal);
    }
    return `Typed ${total} key press${total === 1 ? "" : "es"}.`;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
