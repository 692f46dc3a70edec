/**
 * Storage folders, and the one way a name from a request becomes a path. A name is
 * checked to be a plain file name (server/domain/validation.ts), joined to a folder
 * the admin configured, and, when the file is opened, must be a regular file inside
 * that folder (not a symlink, not reached through one).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import type { PoolInfo } from "../domain/types";
import { imageFileName, parseOrThrow } from "../domain/validation";
import { ISO_POOL, type AgentConfig } from "./config";
import { readImageHeader } from "./image-header";
import { finalNames } from "./journal";

/** Backing files under an image, at most (a linked clone has one). */
export const MAX_BACKING_CHAIN = 16;

/** The suffix of an upload still being written; image names may not end with it. */
export const PART_SUFFIX = ".part";

export class Storage {
  constructor(private readonly config: Pick<AgentConfig, "pools" | "isoDir">) {}

  /** Every storage folder by name: the image folders and the ISO folder. */
  get folders(): Record<string, { dir: string; content: PoolInfo["content"] }> {
    const folders: Record<string, { dir: string; content: PoolInfo["content"] }> = {};
    for (const [name, dir] of Object.entries(this.config.pools)) folders[name] = { dir, content: "images" };
    folders[ISO_POOL] = { dir: this.config.isoDir, content: "isos" };
    return folders;
  }

  /** The folder of a pool, refusing names the admin did not configure. */
  folder(pool: string, content?: PoolInfo["content"]): string {
    const folder = Object.hasOwn(this.folders, pool) ? this.folders[pool] : undefined;
    if (!folder) throw new GuesthouseError("not-found", `This host has no storage folder named "${pool}".`);
    if (content && folder.content !== content) {
      throw new GuesthouseError("invalid-input", `The storage folder "${pool}" holds ${folder.content === "isos" ? "ISO images" : "disk images"}.`);
    }
    return folder.dir;
  }

  /** The path a file name stands for in a pool; the name is checked, the file need not exist. */
  pathOf(pool: string, file: string, content?: PoolInfo["content"]): string {
    const name = parseOrThrow(imageFileName, file, "The image name");
    return path.join(this.folder(pool, content), name);
  }

  /**
   * The path of an existing image: a regular file, not a symlink, whose real folder
   * is the pool's real folder (so neither the file nor a folder on the way leads out).
   */
  async existing(pool: string, file: string, content?: PoolInfo["content"]): Promise<string> {
    const candidate = this.pathOf(pool, file, content);
    const stat = await fsp.lstat(candidate).catch(() => null);
    if (!stat) throw new GuesthouseError("not-found", `There is no image "${file}" in the storage folder "${pool}".`);
    if (!stat.isFile()) {
      throw new GuesthouseError("invalid-input", `"${file}" in "${pool}" is ${stat.isSymbolicLink() ? "a symbolic link" : "not a regular file"}; only regular files are used.`);
    }
    if (!(await directlyIn(candidate, [this.folder(pool)]))) throw new GuesthouseError("invalid-input", `"${file}" is not inside the storage folder "${pool}".`);
    return candidate;
  }

  /**
   * The image a path from an image's own header stands for (its backing file): a regular
   * file, not a symlink, directly inside an image folder, with a valid image name. Any
   * other path (a host file, a device, the secrets folder, an ISO) is refused, so no
   * image can make qemu-img or QEMU open it.
   */
  async imageAt(candidate: string, of: string): Promise<string> {
    const refuse = () =>
      new GuesthouseError(
        "invalid-input",
        `${of} is based on "${path.basename(candidate)}", which is not an image in this host's storage folders; it is not opened.`,
      );
    const imageFolders = Object.values(this.folders).flatMap(({ dir, content }) => (content === "images" ? [dir] : []));
    // Decided on the name first: a path that does not name an image directly in an image
    // folder is refused without the file system ever being asked about it.
    if (!imageFileName.safeParse(path.basename(candidate)).success || !imageFolders.includes(path.dirname(candidate))) throw refuse();
    const stat = await fsp.lstat(candidate).catch(() => null);
    if (!stat?.isFile()) throw refuse();
    if (!(await directlyIn(candidate, imageFolders))) throw refuse();
    return candidate;
  }

  /**
   * Refuses an image whose header would make QEMU or qemu-img open a file that is not an
   * image in a storage folder: a qcow2 external data file, a VMDK text descriptor (its
   * extent lines name the files holding the data), or a backing file (a qcow2's, a VMDK's
   * parent) elsewhere, each level through imageAt. `backing` says what a backing file
   * name does: "follow" (checked level by level), "ignore" (the caller walks the chain)
   * or "refuse" (an upload: what arrives must stand alone). Read from the headers alone, without qemu-img: cheap enough
   * for every start and hot-plug. `format` is what QEMU will be told the
   * image is (a raw disk's bytes are its guest's, whatever they look like), or null
   * where qemu-img will probe it.
   */
  async selfContained(file: string, of: string, format: string | null, { backing = "follow" }: { backing?: "follow" | "ignore" | "refuse" } = {}): Promise<void> {
    for (let level = 0; ; level++) {
      const as = (kinds: string[]) => format === null || kinds.includes(format);
      // Opened as raw, vdi or vpc, an image names no other file: its header is not read.
      if (!as(["qcow2", "qcow", "vmdk"])) return;
      const header = await readImageHeader(file);
      if (header.kind === "vmdk-descriptor" && as(["vmdk"])) {
        throw new GuesthouseError(
          "invalid-input",
          `${of} is a VMDK descriptor, which names other files that hold its data; only single-file images are used. Convert it where it was made (for example "qemu-img convert -O qcow2").`,
        );
      }
      const qcow = header.kind === "qcow" && as(["qcow2", "qcow"]);
      if (!qcow && !(header.kind === "vmdk" && as(["vmdk"]))) return;
      if (qcow && header.externalData) {
        throw new GuesthouseError("invalid-input", `${of} keeps its data in another file (a qcow2 external data file); only self-contained images are used.`);
      }
      if (header.backing === null || backing === "ignore") return;
      if (backing === "refuse") throw basedOnAnother(of, header.backing);
      if (level >= MAX_BACKING_CHAIN) throw new GuesthouseError("invalid-input", `${of} sits on more than ${MAX_BACKING_CHAIN} backing files; it is not used.`);
      file = await this.imageAt(path.resolve(path.dirname(file), header.backing), of);
      format = header.backingFormat;
    }
  }

  /** The regular files in a pool whose names are valid image names (uploads in progress left out). */
  async list(pool: string): Promise<string[]> {
    const entries = await fsp.readdir(this.folder(pool), { withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isFile() && imageFileName.safeParse(e.name).success)
      .map((e) => e.name)
      .sort();
  }

  /**
   * Interrupted uploads: `<name>.part` files (regular files whose name without the suffix
   * is a valid image name) in every folder, with their size and when they last grew.
   */
  async parts(): Promise<Array<{ pool: string; file: string; path: string; bytes: number; modifiedAt: number }>> {
    const found = [];
    for (const [pool, { dir }] of Object.entries(this.folders)) {
      for (const entry of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
        if (!entry.isFile() || !entry.name.endsWith(PART_SUFFIX)) continue;
        const file = entry.name.slice(0, -PART_SUFFIX.length);
        if (!imageFileName.safeParse(file).success) continue;
        const stat = await fsp.lstat(path.join(dir, entry.name)).catch(() => null);
        if (stat?.isFile()) found.push({ pool, file, path: path.join(dir, entry.name), bytes: stat.size, modifiedAt: stat.mtimeMs });
      }
    }
    return found.sort((a, b) => a.modifiedAt - b.modifiedAt);
  }

  /** Size and free space of each folder's file system. */
  async pools(): Promise<PoolInfo[]> {
    return Promise.all(
      Object.entries(this.folders).map(async ([name, { dir, content }]) => {
        const fsStat = await fsp.statfs(dir).catch(() => null);
        return {
          name,
          content,
          totalBytes: fsStat ? fsStat.blocks * fsStat.bsize : 0,
          freeBytes: fsStat ? fsStat.bavail * fsStat.bsize : 0,
        };
      }),
    );
  }

  /** Free bytes where a pool lives (for refusing uploads that cannot fit before writing). */
  freeBytes(pool: string): number {
    const stat = fs.statfsSync(this.folder(pool));
    return stat.bavail * stat.bsize;
  }

  /** Replaces storage folder paths in a message by their names, and a task's temporaries by the names they stand for, so no host path reaches a page. */
  scrub(text: string): string {
    let out = finalNames(text);
    for (const [name, { dir }] of Object.entries(this.folders)) out = out.replaceAll(`${dir}/`, `${name}/`).replaceAll(dir, name);
    return out;
  }
}

/** An uploaded image that names a backing file: refused without looking at what it names. */
export function basedOnAnother(of: string, backing: unknown): GuesthouseError {
  const named = typeof backing === "string" ? ` ("${path.basename(backing).slice(0, 80)}")` : "";
  return new GuesthouseError(
    "invalid-input",
    `${of} is based on another image${named}, so it was not kept: only self-contained images are taken. Join it with its base where it was made, for example "qemu-img convert -O qcow2 <image> <new image>", and upload that.`,
  );
}

/** Whether a file's real path lies directly in the real path of one of these folders (no symlink leads out). */
async function directlyIn(file: string, folders: string[]): Promise<boolean> {
  const [realFile, ...realFolders] = await Promise.all([fsp.realpath(file), ...folders.map((f) => fsp.realpath(f).catch(() => null))]);
  return realFolders.includes(path.dirname(realFile!));
}
