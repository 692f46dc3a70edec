/**
 * A small tmpfs of the test's own, for a storage folder that fills up. Mounting needs
 * root; where it cannot be mounted, `dir` is an ordinary empty folder and `mounted` is
 * false, and the test says it is skipped.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface TestTmpfs {
  dir: string;
  mounted: boolean;
  /** Changes its size (a full folder that grows, say). */
  resize(size: string): void;
  /** Unmounts it and removes the folder. */
  cleanup(): void;
}

export function mountTmpfs(size: string): TestTmpfs {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-tmpfs-"));
  let mounted = false;
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" });
    mounted = true;
  } catch {
    // not root: the caller skips what needs it
  }
  return {
    dir,
    mounted,
    resize: (newSize) => execFileSync("mount", ["-o", `remount,size=${newSize}`, dir]),
    cleanup() {
      if (mounted) execFileSync("umount", [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
