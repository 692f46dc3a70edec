/**
 * Uploads a file to a storage folder (or `isos`), resuming where an interrupted upload
 * of the same name stopped: the API says how many bytes it kept, and the rest follows,
 * streamed from the file with a progress bar on a terminal.
 */
import fs from "node:fs";
import { Readable } from "node:stream";
import type { Client } from "./client";
import { answerOf } from "./client";
import { Failure, UsageError } from "./errors";
import { bytes, Progress } from "./output";

export interface Uploaded {
  sha256: string;
  sizeBytes: number;
  format: string;
  diskId?: string;
  iso?: string;
}

export async function upload(api: Client, source: string, pool: string, file: string): Promise<Uploaded> {
  let size: number;
  try {
    size = fs.statSync(source).size;
  } catch {
    throw new UsageError(`Cannot read ${source}.`);
  }
  if (size === 0) throw new UsageError(`${source} is empty.`);
  const target = `/uploads/${encodeURIComponent(pool)}/${encodeURIComponent(file)}`;
  const { offset } = await api.get<{ offset: number; uploading: boolean }>(target);
  if (offset > size) throw new UsageError(`The host has ${bytes(offset)} of an upload named ${file}, more than ${source} holds; remove it first (guesthouse task list).`);
  const bar = new Progress(file);
  if (offset > 0 && process.stderr.isTTY) process.stderr.write(`Resuming after ${bytes(offset)}.\n`);
  let sent = offset;
  const stream = fs.createReadStream(source, { start: offset });
  stream.on("data", (chunk) => {
    sent += chunk.length;
    bar.update(sent / size, `${bytes(sent)} of ${bytes(size)}`);
  });
  let res: Response;
  try {
    res = await fetch(`${api.url(target)}?size=${size}&offset=${offset}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${api.remote.token}`, "content-type": "application/octet-stream", "content-length": String(size - offset) },
      body: Readable.toWeb(stream) as ReadableStream,
      duplex: "half",
    } as RequestInit);
  } catch (err) {
    bar.end();
    throw new Failure(`The upload broke off after ${bytes(sent)}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}. Run the same command again to resume.`);
  }
  bar.end();
  return (await answerOf(res)) as Uploaded;
}
