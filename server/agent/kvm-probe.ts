/**
 * Does KVM run real guest code on this host? Opening /dev/kvm, or even starting a
 * paused QEMU with it, is not enough: some hosts (nested virtualization) expose a
 * /dev/kvm on which QEMU aborts at the first vCPU reset, and others pass a paused
 * start but stop the first boot loader with "KVM internal error ... emulation failure".
 * So the probe boots a test guest under KVM, through SeaBIOS and a boot sector that
 * walks real, protected, unreal and long mode (server/agent/kvm-probe.S), and counts
 * KVM as working only when that guest reaches its end within a time limit.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { kvmProbeArgs, QEMU_BINARY } from "../qemu/args";
import { childEnv } from "./process";
import type { QemuIdentity } from "./qemu-user";

/** kvm-probe.S assembled, up to its last non-zero byte before the boot signature (bootSector() adds the rest). */
const CODE_BASE64 =
  "+jHAjtiOwI7QvAB86hF8AACwUrr4A+7kkgwCJP7mkg8BFjh9DyDADAEPIsDqMXwIAGa4EACO2I7AjtC8AHwAAJxqCGhJfAAAzzHAD6IPMbBQZrr4A+7qXXwAABgADyDAJP4PIsDqanwAADHAjtBmvgAAEABmuEhHSEdnZokGZ2Y7BnVxxwYAAu58xwYCAgAAzYC/ABC5AAxmMcD8ZvOrZscGABADIAAAZscGACADMAAAZscGADCDAAAAZrgAEAAADyLYDyDgZoPIIA8i4Ga5gAAAwA8yZg0AAQAADzAPIMBmDQEAAIAPIsDq+HwgALBVuvgD7s/06/2wTGa6+APusApmuvgD7rAx5vT06/2NdgAAAAAAAAAAAP//AAAAms8A//8AAACSzwD//wAAAJoAAP//AAAAmq8AJwAQfQ==";

/** What the test guest prints on its serial port as it finishes each step, in order. */
export const PROBE_STEPS = [
  { mark: "R", name: "real mode" },
  { mark: "P", name: "32-bit protected mode" },
  { mark: "U", name: "real mode with 4 GiB segments" },
  { mark: "L", name: "64-bit long mode" },
] as const;

/** QEMU's exit status once the test guest has written 0x31 to the isa-debug-exit port: (0x31 << 1) | 1. */
export const PROBE_PASSED_STATUS = 99;

/** How long the test guest may take. Under a working KVM it takes a fraction of a second; a nested host's SeaBIOS a few. */
export const PROBE_TIME_LIMIT_MS = 10_000;

/** The test guest's disk: SeaBIOS will not boot a disk smaller than one cylinder (about 504 KiB). */
const PROBE_DISK_BYTES = 1 << 20;

/** The 512-byte boot sector of the test guest. */
export function bootSector(): Buffer {
  const sector = Buffer.alloc(512);
  Buffer.from(CODE_BASE64, "base64").copy(sector);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

export type ProbeResult =
  | { ok: true; reason: string; ms: number }
  | {
      ok: false;
      /** Why KVM is not used, in plain words for the dashboard. */
      reason: string;
      /** The same QEMU on the same kernel would fail the same way: worth remembering. Not so for a time-out or a missing /dev/kvm. */
      lasting: boolean;
      ms: number;
    };

/** The probe's QEMU could not be started at all (not installed, not executable). */
export class QemuNotStartedError extends Error {}

/** What the probe's QEMU did, as classifyProbe reads it. */
export interface ProbeRun {
  /** Its exit status, or null when a signal ended it. */
  status: number | null;
  signal: NodeJS.Signals | null;
  /** What the test guest printed on its serial port. */
  serial: string;
  /** What QEMU printed itself. */
  stderr: string;
  /** It was still running at the time limit and was killed. */
  timedOut: boolean;
  ms: number;
  timeLimitMs: number;
}

/** The verdict on one run of the probe: KVM works, or why not. Pure, so tests can pin every case down. */
export function classifyProbe(run: ProbeRun): ProbeResult {
  const { ms } = run;
  const reached = PROBE_STEPS.filter((s) => run.serial.includes(s.mark));
  const stuckIn = PROBE_STEPS[reached.length]?.name ?? "its last step";
  const passed = reached.length > 0 ? `, after ${reached.map((s) => s.name).join(", ")}` : "";
  const stderr = run.stderr;

  if (run.status === PROBE_PASSED_STATUS && reached.length === PROBE_STEPS.length) {
    return { ok: true, reason: `KVM ran the test guest through real, protected and long mode in ${(ms / 1000).toFixed(2)} s`, ms };
  }
  const module = /Could not access KVM kernel module: ([^\n]*)/.exec(stderr);
  if (module) {
    const why = module[1]!.trim();
    if (/No such file or directory/i.test(why)) {
      return { ok: false, reason: "/dev/kvm is missing (the kvm kernel module is not loaded, or this machine has no hardware virtualization)", lasting: false, ms };
    }
    if (/Permission denied/i.test(why)) {
      return {
        ok: false,
        reason: "/dev/kvm is not accessible to QEMU's user (permission denied): give the kvm group read and write on it, as Debian's udev rules do (scripts/setup.sh does where udev does not run)",
        lasting: false,
        ms,
      };
    }
    return { ok: false, reason: `QEMU cannot open /dev/kvm (${why})`, lasting: false, ms };
  }
  if (/KVM internal error/.test(stderr)) {
    const what = /emulation failure/.test(stderr) ? "an emulation failure" : `an internal error (${/Suberror: \d+/.exec(stderr)?.[0] ?? "no suberror given"})`;
    return { ok: false, reason: `KVM stopped with ${what} while running test code (in ${stuckIn}${passed})`, lasting: true, ms };
  }
  if (run.timedOut) {
    return {
      ok: false,
      reason: `KVM did not finish the test code within ${Math.round(run.timeLimitMs / 1000)} s (it stopped in ${reached.length === 0 ? "the firmware or real mode" : stuckIn}${passed})`,
      lasting: false,
      ms,
    };
  }
  const said = firstWords(stderr);
  if (reached.length === 0) {
    const how = run.signal === "SIGABRT" ? "it aborted at start" : run.signal ? `it was killed by ${run.signal}` : `it exited with status ${run.status}`;
    return { ok: false, reason: `QEMU cannot use /dev/kvm: ${how}${said ? ` (${said})` : ""}`, lasting: true, ms };
  }
  return {
    ok: false,
    reason: `the KVM test guest ended in ${stuckIn}${passed} (${run.signal ? `signal ${run.signal}` : `exit status ${run.status}`}${said ? `: ${said}` : ""})`,
    lasting: true,
    ms,
  };
}

/** QEMU's first line of complaint, without its program-name prefix or a warning about a CPU feature. */
function firstWords(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.replace(/^qemu-system-\w+:\s*/, "").replace(/^error:\s*/i, "").trim())
    .filter((l) => l && !/^warning:/i.test(l));
  return (lines[0] ?? "").slice(0, 200);
}

/**
 * Boots the test guest under KVM once and says whether it got through. A QEMU that
 * reports a KVM internal error is killed at once (its vCPU would stay paused); one
 * that hangs is killed at the time limit and counts as a failure. Rejects with
 * QemuNotStartedError when the binary cannot be started at all.
 */
export async function runKvmProbe(options: { qemu?: string; timeLimitMs?: number; identity?: QemuIdentity | null } = {}): Promise<ProbeResult> {
  const qemu = options.qemu ?? QEMU_BINARY;
  const timeLimitMs = options.timeLimitMs ?? PROBE_TIME_LIMIT_MS;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "guesthouse-kvm-probe-"));
  try {
    const image = path.join(dir, "boot.img");
    await fsp.writeFile(image, bootSector(), { mode: 0o600 });
    await fsp.truncate(image, PROBE_DISK_BYTES);
    const started = Date.now();
    const run = await new Promise<ProbeRun>((resolve, reject) => {
      // stdin stays an open pipe: QEMU's stdio chardev would otherwise read end-of-file.
      // A process group of its own, so that a kill reaches QEMU behind any wrapper script.
      // As guests' QEMUs run: as a user of its own, its disk a descriptor the agent opened.
      const disk = fs.openSync(image, "r");
      let child: ChildProcess;
      try {
        child = spawn(qemu, kvmProbeArgs(image), {
          stdio: ["pipe", "pipe", "pipe", disk],
          env: childEnv(),
          detached: true,
          ...(options.identity ? { uid: options.identity.uid, gid: options.identity.gid } : {}),
        });
      } finally {
        fs.closeSync(disk);
      }
      let serial = "";
      let stderr = "";
      let timedOut = false;
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      const killAll = () => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL"); // the group is gone already
        }
      };
      const finish = (status: number | null, signal: NodeJS.Signals | null) => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.destroy();
        resolve({ status, signal, serial, stderr, timedOut, ms: Date.now() - started, timeLimitMs });
      };
      timers.push(
        setTimeout(() => {
          timedOut = true;
          killAll();
          // Should something still hold the pipes open, the verdict does not wait for it.
          timers.push(setTimeout(() => finish(null, "SIGKILL"), 1000));
        }, timeLimitMs),
      );
      let failing = false;
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (serial += chunk));
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
        // QEMU prints the whole register dump at once, then leaves the vCPU paused for good.
        if (!failing && stderr.includes("KVM internal error")) {
          failing = true;
          timers.push(setTimeout(killAll, 200));
        }
      });
      child.once("error", (err: NodeJS.ErrnoException) => {
        settled = true;
        for (const t of timers) clearTimeout(t);
        reject(new QemuNotStartedError(err.code === "ENOENT" ? `${qemu} was not found` : `${qemu} could not be started (${err.message})`));
      });
      child.once("close", (status, signal) => finish(status, signal));
      // Should something else hold its pipes open (a wrapper's child), QEMU's exit is enough.
      child.once("exit", (status, signal) => {
        killAll();
        timers.push(setTimeout(() => finish(status, signal), 500));
      });
    });
    return classifyProbe(run);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
