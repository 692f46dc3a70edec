/**
 * Disk volumes and ISO images on this host, through `qemu-img`. Names come in as
 * validated volume ids or ISO file names and are joined to the agent's own folders;
 * nothing from a request is ever a path by itself.
 */
import { execFile } from "node:child_process";
import fsp from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { GuesthouseError } from "../domain/errors";
import type { DiskFormat, IsoInfo } from "../domain/types";
import type { AgentConfig } from "./config";

const run = promisify(execFile);

export class Volumes {
  constructor(private readonly config: AgentConfig) {}

  private volumePath(volume: string, format: DiskFormat): string {
    return path.join(this.config.disksDir, `${volume}.${format}`);
  }

  /** Reserves a new volume's file atomically (refusing an existing one). */
  private async reserve(volume: string, format: DiskFormat): Promise<string> {
    await fsp.mkdir(this.config.disksDir, { recursive: true, mode: 0o700 });
    const file = this.volumePath(volume, format);
    try {
      await (await fsp.open(file, "wx", 0o600)).close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new GuesthouseError("conflict", "A volume with this id already exists.", file);
      }
      throw err;
    }
    return file;
  }

  /** Runs qemu-img for a reserved file; on failure the file is removed and qemu-img's reason given. */
  private async qemuImg(file: string, what: string, args: string[], timeoutMs: number): Promise<void> {
    try {
      await run("qemu-img", args, { timeout: timeoutMs });
    } catch (err) {
      await fsp.rm(file, { force: true });
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new GuesthouseError("qemu-failed", `qemu-img could not ${what}: ${stderr || (err as Error).message}`);
    }
  }

  /** Creates a sparse image; a failure leaves no file behind. */
  async create(volume: string, format: DiskFormat, sizeGiB: number): Promise<void> {
    const file = await this.reserve(volume, format);
    await this.qemuImg(file, "create the disk", ["create", "-q", "-f", format, file, `${sizeGiB}G`], 60_000);
  }

  /**
   * Makes a new qcow2 volume from an existing one: a full, sparse copy, or a linked
   * clone whose backing file is the source (which must then never change).
   */
  async clone(source: string, sourceFormat: DiskFormat, volume: string, mode: "full" | "linked"): Promise<void> {
    const from = this.volumePath(source, sourceFormat);
    try {
      await fsp.access(from);
    } catch {
      throw new GuesthouseError("not-found", "The disk to clone is missing on the host.", from);
    }
    const file = await this.reserve(volume, "qcow2");
    const args =
      mode === "linked"
        ? ["create", "-q", "-f", "qcow2", "-b", from, "-F", sourceFormat, file]
        : ["convert", "-q", "-f", sourceFormat, "-O", "qcow2", from, file];
    await this.qemuImg(file, mode === "linked" ? "make the linked clone" : "copy the disk", args, 60 * 60_000);
  }

  async remove(volume: string, format: DiskFormat): Promise<void> {
    await fsp.rm(this.volumePath(volume, format), { force: true });
  }

  async listIsos(): Promise<IsoInfo[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.config.isoDir);
    } catch {
      return [];
    }
    const isos: IsoInfo[] = [];
    for (const name of names.filter((n) => n.endsWith(".iso")).sort()) {
      const stat = await fsp.stat(path.join(this.config.isoDir, name)).catch(() => null);
      if (stat?.isFile()) isos.push({ name, sizeBytes: stat.size });
    }
    return isos;
  }
}

export async function qemuVersion(): Promise<string> {
  try {
    const { stdout } = await run("qemu-system-x86_64", ["--version"], { timeout: 10_000 });
    return /version ([\d.]+)/.exec(stdout)?.[1] ?? "unknown";
  } catch {
    return "not installed";
  }
}
