/**
 * Launching one guest's QEMU as the supervisor asks: the passphrases of its encrypted
 * disks prepared for QEMU, the files of its command line opened by the agent, and the
 * process started as its own user with exactly those descriptors.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { GuestSpec } from "../domain/types";
import { secretPath, type EncryptedSecret, type PassedDescriptor, type PassedTap } from "../qemu/args";
import { mustHaveSecret } from "./guest-disks";
import { childEnv } from "./process";
import { closeAll, openDescriptors, type QemuIdentity } from "./qemu-user";

/** The passphrases of a guest's encrypted disks, encrypted for one start. */
export interface StartSecrets {
  /** The AES-256 key QEMU reads from its run folder (guestFiles(…).masterKey). */
  masterKey: Buffer;
  /** Each passphrase encrypted with it (AES-256-CBC, an IV each), by volume. */
  secrets: Record<string, EncryptedSecret>;
}

/**
 * Reads each encrypted disk's passphrase from the agent's secrets folder and encrypts it
 * with a key made for this start, as QEMU's secret objects take it (`keyid`, `iv`,
 * base64 `data`), so the command line carries no passphrase. Null for a guest without
 * encrypted disks.
 */
export async function encryptPassphrases(spec: GuestSpec, secretsDir: string): Promise<StartSecrets | null> {
  const encrypted = spec.disks.filter((d) => d.encrypted);
  if (encrypted.length === 0) return null;
  const masterKey = randomBytes(32);
  const secrets: Record<string, EncryptedSecret> = {};
  for (const disk of encrypted) {
    const file = secretPath({ secretsDir }, disk.volume);
    await mustHaveSecret(file, disk);
    const iv = randomBytes(16);
    // PKCS#7 padding (Node's default) is what QEMU strips after decrypting.
    const cipher = createCipheriv("aes-256-cbc", masterKey, iv);
    const data = Buffer.concat([cipher.update(await fsp.readFile(file)), cipher.final()]);
    secrets[disk.volume] = { iv: iv.toString("base64"), data: data.toString("base64") };
  }
  return { masterKey, secrets };
}

/**
 * Writes the start's master key where QEMU reads it, readable by QEMU's user only; the
 * supervisor removes it once QEMU answers on QMP (it has read it by then).
 */
export async function writeMasterKey(file: string, key: Buffer, identity: QemuIdentity | null): Promise<void> {
  await fsp.writeFile(file, key, { mode: 0o600, flag: "wx" });
  if (identity) await fsp.chown(file, identity.uid, identity.gid);
}

/** The helper that makes a guest's taps and then becomes its QEMU (server/agent/open-taps.py). */
const TAP_LAUNCHER = fileURLToPath(new URL("./open-taps.py", import.meta.url));

/**
 * Starts QEMU with `argv` in a process group of its own (an agent restart leaves it
 * running), as `identity` (its supplementary groups dropped), with its output in
 * `logFile`, a minimal environment, and as descriptors 3, 4, … the files the command
 * line's `-add-fd`s name, opened here. The agent's copies are closed once it runs.
 * With taps, the launcher starts first (as the agent's user, which may make them), puts
 * them at the fds that follow, and then becomes QEMU as `identity`: the same process.
 */
export function spawnQemu(argv: string[], descriptors: PassedDescriptor[], identity: QemuIdentity | null, logFile: string, taps: PassedTap[] = []): ChildProcess {
  const log = fs.openSync(logFile, "w", 0o600);
  let fds: number[] = [];
  try {
    fds = openDescriptors(descriptors);
    const common = { detached: true, stdio: ["ignore", log, log, ...fds] as Array<"ignore" | number>, env: childEnv() };
    if (taps.length) {
      const plan = { uid: identity?.uid ?? null, gid: identity?.gid ?? null, taps };
      return spawn("python3", [TAP_LAUNCHER, JSON.stringify(plan), ...argv], common);
    }
    return spawn(argv[0]!, argv.slice(1), {
      ...common,
      // Nothing of the agent's own environment (its secrets included): childEnv.
      ...(identity ? { uid: identity.uid, gid: identity.gid } : {}),
    });
  } finally {
    closeAll([log, ...fds]);
  }
}
