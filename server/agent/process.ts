/**
 * The agent's dealings with processes it starts or finds: the environment its children
 * get, and pid checks and signals that survive a pid being reused.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

/**
 * The environment of every program the agent runs (QEMU, qemu-img, openssl): a PATH and
 * a locale, nothing of the agent's own (its secrets included).
 */
export function childEnv(locale: { LANG: string } | { LC_ALL: string } = { LANG: "C.UTF-8" }): NodeJS.ProcessEnv {
  // Next's types declare NODE_ENV required; a child needs none.
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", ...locale } as unknown as NodeJS.ProcessEnv;
}

/** A pid file's pid, or null when there is none or it holds no pid. */
export async function readPid(file: string): Promise<number | null> {
  try {
    const pid = Number.parseInt(await fsp.readFile(file, "utf8"), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * The pid is a live QEMU whose command line names this guest's state folder (so not a
 * recycled pid). Matched on `<id>/qmp.sock`, not the full path, so a data folder
 * reached through another path (a symlink, a bind mount) still matches.
 */
export function isQemuOf(pid: number, id: string): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return path.basename(argv[0] ?? "").startsWith("qemu-system") && argv.some((a) => a.includes(`/${id}/qmp.sock`));
  } catch {
    return false;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0); its /proc stat says "Z".
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** True once the pid is gone; false if it still lives after `timeoutMs`. */
export async function waitForPidExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

/** Signals the process group led by `pid` (QEMU runs in one of its own), or the pid alone. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
