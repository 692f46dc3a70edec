/**
 * Hands a running QEMU descriptors of files the agent opened (a disk plugged in while
 * the guest runs, and its base images). QEMU takes them with QMP `add-fd`, the
 * descriptor sent as SCM_RIGHTS, which Node cannot send: a small helper does
 * (server/agent/add-fds.py, Python's socket.sendmsg), on the guest's second QMP
 * monitor. At start there is no need: the descriptors are QEMU's from its first
 * instruction (`-add-fd`, built in server/qemu/args.ts).
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { GuesthouseError } from "../domain/errors";
import { FIRST_PASSED_FD, type PassedDescriptor } from "../qemu/args";
import { childEnv } from "./process";
import { closeAll, openDescriptors } from "./qemu-user";

const HELPER = fileURLToPath(new URL("./add-fds.py", import.meta.url));
/** The system's Python (Debian's python3-minimal), never one a user's PATH puts first. */
const SYSTEM_PATH = "/usr/bin:/bin";
/** The helper gives up on a QEMU that does not answer (its own socket time-out is shorter). */
const HELPER_TIMEOUT_MS = 20_000;

/**
 * Opens `descriptors` and hands them to the QEMU listening on `qmpSocket`, each into
 * its fd set; the agent's copies are closed either way. Rejects with QEMU's words.
 */
export async function handOver(qmpSocket: string, descriptors: PassedDescriptor[]): Promise<void> {
  if (descriptors.length === 0) return;
  const fds = openDescriptors(descriptors);
  try {
    const wanted = descriptors.map((d, i) => ({ fd: FIRST_PASSED_FD + i, set: d.set, opaque: `${d.mode}:${d.path}` }));
    await runPythonHelper(HELPER, [qmpSocket, JSON.stringify(wanted)], fds, {
      missing: "python3 is missing on this host: the agent needs it to hand QEMU the files of a disk plugged in while the guest runs. Install Debian's python3-minimal, or attach the disk while the guest is stopped.",
      failed: (why) => `QEMU did not take the disk's files: ${why}`,
    });
  } finally {
    closeAll(fds);
  }
}

/**
 * Runs one of the agent's Python helpers (the system's python3, never one a user's PATH
 * puts first) with `fds` as its descriptors 3, 4, …, bounded in time; rejects with what it
 * printed on stderr (`failed`), or `missing` when there is no python3.
 */
export function runPythonHelper(script: string, args: string[], fds: number[], words: { missing: string; failed: (why: string) => string }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn("python3", [script, ...args], { stdio: ["ignore", "ignore", "pipe", ...fds], env: { ...childEnv(), PATH: SYSTEM_PATH } });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-4096)));
    const timer = setTimeout(() => child.kill("SIGKILL"), HELPER_TIMEOUT_MS);
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new GuesthouseError("qemu-failed", err.code === "ENOENT" ? words.missing : `The agent could not start its helper ${path.basename(script)}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const why = stderr.trim() || (signal ? `it was stopped (${signal})` : `it exited with status ${code}`);
      reject(new GuesthouseError("qmp-error", words.failed(why)));
    });
  });
}
