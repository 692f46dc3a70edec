/**
 * What this host's QEMU is and which accelerator its guests get, settled once when the
 * agent starts: QEMU must be there (else the agent refuses to start, saying what to
 * install), and KVM is used only when the probe's test guest ran under it
 * (server/agent/kvm-probe.ts); otherwise TCG, with the reason shown on the dashboard.
 *
 * The probe's verdict is remembered in a small file, keyed by the QEMU binary, the
 * firmware the test guest boots, the host's kernel and KVM modules' parameters, and the
 * CPU the host shows (its flags and microcode: a nested host moved or its hypervisor
 * upgraded shows others), so an agent restarted on the same host does not boot the test
 * guest again; any change to those probes again, and so does a kept "kvm" whose /dev/kvm
 * the agent can no longer open. Verdicts that could change by themselves (a time-out on
 * a busy host, a /dev/kvm that appears once a module loads) are not remembered.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import type { Accelerator } from "../domain/types";
import { kvmProbeArgs, QEMU_BINARY } from "../qemu/args";
import { bootSector, QemuNotStartedError, runKvmProbe } from "./kvm-probe";
import { readJsonFile, writeAtomically } from "./files";
import { childEnv } from "./process";
import type { QemuIdentity } from "./qemu-user";

const execFileAsync = promisify(execFile);

/** GUESTHOUSE_ACCEL: "auto" probes; "kvm" and "tcg" are taken as given. */
export type AcceleratorMode = "auto" | Accelerator;

export interface HostQemu {
  /** "7.2.22" */
  version: string;
  accelerator: Accelerator;
  /** Why, in plain words: shown beside the host on the dashboard. */
  acceleratorReason: string;
}

/** QEMU cannot be run on this host: the agent cannot do its job and says so at start. */
export class QemuMissingError extends Error {}

/** The version QEMU reports, or QemuMissingError saying what to install. */
export async function qemuVersion(qemu = QEMU_BINARY): Promise<string> {
  try {
    const { stdout } = await execFileAsync(qemu, ["--version"], { timeout: 10_000, env: childEnv() });
    return /version ([\d.]+)/.exec(stdout)?.[1] ?? "unknown";
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw new QemuMissingError(`QEMU is not installed: ${qemu} is not on the agent's PATH. Install Debian's qemu-system-x86 package (apt-get install qemu-system-x86).`);
    }
    throw new QemuMissingError(`QEMU does not run: \`${qemu} --version\` failed (${(e.stderr || e.message).trim().split("\n")[0]}). Reinstall qemu-system-x86.`);
  }
}

const verdictSchema = z.strictObject({
  key: z.string(),
  accelerator: z.enum(["kvm", "tcg"]),
  reason: z.string(),
  checkedAt: z.string(),
});
export type RememberedVerdict = z.infer<typeof verdictSchema>;

/**
 * QEMU's version and the accelerator for its guests. `cacheFile` remembers the probe's
 * lasting verdicts; `probe` is the probe itself (tests hand in their own time limit).
 */
export async function checkHostQemu(options: {
  mode: AcceleratorMode;
  cacheFile: string;
  qemu?: string;
  probe?: typeof runKvmProbe;
  log?: (line: string) => void;
  /** Who guests' QEMUs run as (the probe runs so too); null: the agent's own user. */
  identity?: QemuIdentity | null;
}): Promise<HostQemu> {
  const identity = options.identity ?? null;
  const qemu = options.qemu ?? QEMU_BINARY;
  const log = options.log ?? (() => {});
  const version = await qemuVersion(qemu);
  if (options.mode !== "auto") return { version, accelerator: options.mode, acceleratorReason: "set by GUESTHOUSE_ACCEL" };

  const key = await probeKey(qemu, identity);
  const remembered = await readJsonFile(options.cacheFile, verdictSchema);
  if (remembered && remembered.key === key && (remembered.accelerator !== "kvm" || kvmOpens(identity))) {
    log(`accelerator ${remembered.accelerator}: ${remembered.reason} (remembered from ${remembered.checkedAt}; this QEMU and kernel were probed then)`);
    return { version, accelerator: remembered.accelerator, acceleratorReason: remembered.reason };
  }
  let result;
  try {
    result = await (options.probe ?? runKvmProbe)({ qemu, identity });
  } catch (err) {
    if (err instanceof QemuNotStartedError) throw new QemuMissingError(`QEMU could not be started for the KVM probe: ${err.message}. Reinstall qemu-system-x86.`);
    throw err;
  }
  const verdict = result.ok
    ? { accelerator: "kvm" as const, reason: result.reason }
    : { accelerator: "tcg" as const, reason: result.reason };
  log(`accelerator ${verdict.accelerator}: ${verdict.reason}`);
  if (result.ok || result.lasting) {
    await writeVerdict(options.cacheFile, { key, ...verdict, checkedAt: new Date().toISOString() }).catch((err: Error) =>
      log(`could not remember the accelerator verdict in ${options.cacheFile}: ${err.message}`),
    );
  } else {
    // What is there was said of another QEMU or kernel; this one's verdict is not for keeping.
    await fsp.rm(options.cacheFile, { force: true });
  }
  return { version, accelerator: verdict.accelerator, acceleratorReason: verdict.reason };
}

/** The firmware the probe's q35 machine boots (Debian's QEMU finds SeaBIOS in /usr/share/seabios). */
const FIRMWARE_FILES = ["/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/bios-256k.bin"];

/** Whether QEMU's user (or, with none, the agent) can open /dev/kvm now, by its owner, group and mode. */
function kvmOpens(identity: QemuIdentity | null): boolean {
  if (!identity) {
    try {
      fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }
  const stat = fs.statSync("/dev/kvm", { throwIfNoEntry: false });
  if (!stat) return false;
  const bits = stat.uid === identity.uid ? stat.mode >> 6 : stat.gid === identity.gid ? stat.mode >> 3 : stat.mode;
  return (bits & 0o6) === 0o6;
}

/** A file's identity and size, or null when there is none. */
async function fileFacts(file: string): Promise<{ path: string; dev: number; ino: number; size: number; mtimeMs: number } | null> {
  const stat = await fsp.stat(file).catch(() => null);
  return stat ? { path: file, dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs } : null;
}

/**
 * What the verdict depends on: the probe itself (its test guest and command line), the
 * QEMU binary (the file PATH resolves to, by identity and size), the firmware it boots,
 * the kernel (release and build), the KVM modules' parameters (nested,
 * unrestricted_guest, …), and the CPU as the host shows it (flags, microcode, model).
 */
export async function probeKey(qemu: string, identity: QemuIdentity | null = null): Promise<string> {
  const binary = resolveExecutable(qemu);
  const parameters: Record<string, string> = {};
  for (const module of ["kvm", "kvm_intel", "kvm_amd"]) {
    const dir = `/sys/module/${module}/parameters`;
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      parameters[`${module}.${name}`] = (await fsp.readFile(path.join(dir, name), "utf8").catch(() => "?")).trim();
    }
  }
  const cpuinfo = await fsp.readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const cpu = ["model name", "microcode", "flags"].map((field) => new RegExp(`^${field}\\s*:\\s*(.*)$`, "m").exec(cpuinfo)?.[1] ?? "");
  const firmware = await Promise.all(FIRMWARE_FILES.map((f) => fileFacts(fs.existsSync(f) ? fs.realpathSync(f) : f)));
  const facts = {
    probe: createHash("sha256").update(bootSector()).update(kvmProbeArgs("").join(" ")).digest("hex"),
    qemu: (binary ? await fileFacts(binary) : null) ?? qemu,
    firmware,
    kernel: `${os.release()} ${os.version()}`,
    parameters,
    cpu: createHash("sha256").update(cpu.join("\n")).digest("hex"),
    // Who the probe ran as: another user may not reach /dev/kvm.
    identity,
  };
  return createHash("sha256").update(JSON.stringify(facts)).digest("hex");
}

/** The file `name` runs as, searched on PATH the way spawn does; null when there is none. */
function resolveExecutable(name: string): string | null {
  if (name.includes("/")) return path.resolve(name);
  for (const dir of (process.env.PATH ?? "").split(":").filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return fs.realpathSync(candidate);
    } catch {
      // not here
    }
  }
  return null;
}

async function writeVerdict(file: string, verdict: RememberedVerdict): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeAtomically(file, `${JSON.stringify(verdict, null, 2)}\n`);
}
