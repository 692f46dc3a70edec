/**
 * Small live pictures of guests' screens, for the guest list. QMP `screendump` writes
 * the guest's display as a PPM into its state folder (QEMU 7.2 can also write PNG,
 * but a PPM is what the agent can read back and scale without a decoder); the agent
 * reads it, shrinks it and answers a PNG.
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
import { encodePng, parsePpm, scaleDown, type RgbImage } from "./png";
import type { ConsoleTarget } from "./supervisor";

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

  private async grab(target: ConsoleTarget): Promise<RgbImage> {
    // A fresh name each time: two grabs never read each other's half-written file.
    const file = path.join(target.stateDir, `screen-${randomBytes(6).toString("hex")}.ppm`);
    try {
      await target.qmp.execute("screendump", { filename: file, format: "ppm" }, SCREENDUMP_TIMEOUT_MS);
      const image = parsePpm(await fsp.readFile(file));
      return scaleDown(image, SCREENSHOT_MAX_WIDTH);
    } catch (err) {
      if (err instanceof GuesthouseError) throw err;
      throw new GuesthouseError("qemu-failed", "QEMU's picture of the guest's screen could not be read.", (err as Error).message);
    } finally {
      await fsp.rm(file, { force: true });
    }
  }
}
