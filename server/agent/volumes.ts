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

  /** Creates a sparse image; a failure leaves no file behind. */
  async create(volume: string, format: DiskFormat, sizeGiB: number): Promise<void> {
    await fsp.mkdir(this.config.disksDir, { recursive: true, mode: 0o700 });
    const file = this.volumePath(volume, format);
    try {
      // wx: refuse to overwrite an existing volume, atomically.
      await (await fsp.open(file, "wx", 0o600)).close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new GuesthouseError("conflict", "A volume with this id already exists.", file);
      }
      throw err;
    }
    try {
      await run("qemu-img", ["create", "-q", "-f", format, file, `${sizeGiB}G`], { timeout: 60_000 });
    } catch (err) {
      await fsp.rm(file, { force: true });
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new GuesthouseError("qemu-failed", `qemu-img could not create the disk: ${stderr || (err as Error).message}`);
    }
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
