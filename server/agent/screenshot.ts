/**
 * Small live pictures of guests' screens, for the guest list. QMP `screendump` writes
 * the guest's display as a PPM (QEMU 7.2 can also write PNG, but a PPM is what the
 * agent can read back and scale without a decoder) into the guest's screen file, which
 * QEMU got as a descriptor at start (its fd set SCREEN_FDSET: QEMU, running as a user of
 * its own, may write no file by name); the agent empties it before each picture,
 * reads it, shrinks it and answers a PNG. One picture at a time per guest.
 *
 * Many viewers cost one screendump: each guest's picture is kept for CACHE_MS, shrunk
 * to SCREENSHOT_MAX_WIDTH (so a cached frame is small whatever the guest's resolution),
 * with the PNG of each width asked for in that time.
 */
import { randomBytes } from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import { SCREENSHOT_MAX_WIDTH } from "../domain/types";
import { SCREEN_FDSET } from "../qemu/args";
import { encodePng, parsePpm, scaleDown, type RgbImage } from "./png";
import type { ConsoleTarget } from "./supervisor";
import { KeyedTurns } from "./turns";

/** How long one screendump serves every viewer. */
export const CACHE_MS = 2_000;
/** A screendump of a stuck QEMU must not hang the list page. */
const SCREENDUMP_TIMEOUT_MS = 5_000;

interface Cached {
  at: number;
  frame: Promise<RgbImage>;
  pngs: Map<number, Buffer>;
}

export class Screenshots {
  private readonly cache = new Map<string, Cached>();
  private readonly turns = new KeyedTurns<string>();

  /** A PNG of the guest's screen, `width` pixels wide (or its own width if smaller). */
  async png(target: ConsoleTarget, width: number): Promise<Buffer> {
    const now = Date.now();
    for (const [id, entry] of this.cache) if (now - entry.at >= CACHE_MS) this.cache.delete(id);
    let entry = this.cache.get(target.id);
    if (!entry) {
      const created: Cached = { at: now, frame: this.grab(target), pngs: new Map() };
      entry = created;
      this.cache.set(target.id, created);
      created.frame.catch(() => {
        if (this.cache.get(target.id) === created) this.cache.delete(target.id);
      });
    }
    const frame = await entry.frame;
    let png = entry.pngs.get(width);
    if (!png) {
      png = encodePng(scaleDown(frame, width));
      entry.pngs.set(width, png);
    }
    return png;
  }

  private grab(target: ConsoleTarget): Promise<RgbImage> {
    // One at a time per guest: they share the screen file.
    return this.turns.run(target.id, async () => {
      const legacy = !(target.argv ?? []).some((a) => a.startsWith(`fd=`) && a.includes(`,set=${SCREEN_FDSET},`));
      // A QEMU an older agent started (as the agent's user) writes a file by name.
      const file = legacy ? path.join(target.stateDir, `screen-${randomBytes(6).toString("hex")}.ppm`) : target.files.screen;
      try {
        // QEMU appends to its descriptor: emptied first, the file holds this picture alone.
        if (!legacy) await fsp.truncate(file, 0);
        await target.qmp.execute("screendump", { filename: legacy ? file : `/dev/fdset/${SCREEN_FDSET}`, format: "ppm" }, SCREENDUMP_TIMEOUT_MS);
        const image = parsePpm(await fsp.readFile(file));
        return scaleDown(image, SCREENSHOT_MAX_WIDTH);
      } catch (err) {
        if (err instanceof GuesthouseError) throw err;
        throw new GuesthouseError("qemu-failed", "QEMU's picture of the guest's screen could not be read.", (err as Error).message);
      } finally {
        if (legacy) await fsp.rm(file, { force: true });
      }
    });
  }
}
