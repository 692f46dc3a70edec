/** Small file helpers the agent's modules share: a write that is all or nothing, a checked JSON read, the end of a log. */
import fsp from "node:fs/promises";
import type { z } from "zod";

/** Writes `text` to `file` through a temporary file and a rename: a crash leaves the old or the new, never half. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(temporary, text, { mode: 0o600 });
  await fsp.rename(temporary, file);
}

/** A JSON file's contents if it is there, parses, and is what `schema` says; null otherwise. */
export async function readJsonFile<T>(file: string, schema: z.ZodType<T>): Promise<T | null> {
  try {
    const parsed = schema.safeParse(JSON.parse(await fsp.readFile(file, "utf8")));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The last `maxBytes` of a file, or null when there is no such file. */
export async function readTail(file: string, maxBytes: number): Promise<Buffer | null> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The end of a log as text, "" when it cannot be read (QEMU's log, shown with a crash or a halt). */
export async function logTail(file: string, maxBytes = 4096): Promise<string> {
  return ((await readTail(file, maxBytes).catch(() => null)) ?? Buffer.alloc(0)).toString("utf8");
}
