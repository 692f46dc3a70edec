/** The agent's configuration, read from the environment once and validated. */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { DEFAULT_POOL, ISO_POOL, type Accelerator } from "../domain/types";
import { poolName } from "../domain/validation";
import { QEMU_BINARY } from "../qemu/args";

const envSchema = z.object({
  GUESTHOUSE_DATA_DIR: z.string().min(1).default(".data"),
  GUESTHOUSE_IMAGE_DIR: z.string().min(1).optional(),
  GUESTHOUSE_AGENT_SOCKET: z.string().min(1).optional(),
  GUESTHOUSE_ACCEL: z.enum(["auto", "kvm", "tcg"]).default("auto"),
  /** More storage folders for disk images: "fast=/srv/nvme,bulk=/srv/hdd" (name=absolute path). */
  GUESTHOUSE_STORAGE: z.string().optional(),
  /** The largest upload accepted, in bytes (default 64 GiB). */
  GUESTHOUSE_UPLOAD_LIMIT: z.coerce.number().int().positive().default(64 * 2 ** 30),
  /** A guest's serial log is rotated (into serial.log.1) once it reaches this many bytes (default 1 MiB). */
  GUESTHOUSE_SERIAL_LOG_BYTES: z.coerce.number().int().min(1024).default(2 ** 20),
  /** How long a one-time VNC password stays valid, in seconds (default 30; tests shorten it). */
  GUESTHOUSE_VNC_PASSWORD_SECONDS: z.coerce.number().int().min(2).max(3600).default(30),
});

export { DEFAULT_POOL, ISO_POOL };

export interface AgentConfig {
  dataDir: string;
  /** One state folder per guest: `<guestsDir>/<guest id>/`. */
  guestsDir: string;
  /** Storage folders for disk images, by name (DEFAULT_POOL always among them). */
  pools: Record<string, string>;
  isoDir: string;
  /** Encrypted volumes' passphrases, one 0600 file each. */
  secretsDir: string;
  uploadLimitBytes: number;
  /** The size at which a guest's serial log is rotated; serial.log and serial.log.1 each stay about this size. */
  serialLogBytes: number;
  /** The lifetime of a one-time VNC password (QMP expire_password), in seconds. */
  vncPasswordSeconds: number;
  socketPath: string;
  accelerator: Accelerator;
  /** Why this accelerator was chosen, shown on the dashboard. */
  acceleratorReason: string;
}

/**
 * KVM when /dev/kvm can be opened and a QEMU actually starts a vCPU with it; TCG
 * otherwise. The probe matters: some hosts (nested virtualization) expose a
 * /dev/kvm on which QEMU aborts at the first vCPU reset.
 */
export function detectAccelerator(): { accelerator: Accelerator; reason: string } {
  try {
    fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return { accelerator: "tcg", reason: "/dev/kvm is missing or not accessible" };
  }
  const probe = spawnSync(
    QEMU_BINARY,
    ["-machine", "q35,accel=kvm", "-cpu", "host", "-m", "16", "-nodefaults", "-no-user-config", "-display", "none", "-S", "-qmp", "stdio"],
    { input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', timeout: 10_000, encoding: "utf8" },
  );
  if (probe.status === 0) return { accelerator: "kvm", reason: "/dev/kvm works" };
  const why = (probe.stderr || probe.error?.message || `exit ${probe.status}`).trim().split("\n")[0];
  return { accelerator: "tcg", reason: `/dev/kvm exists but QEMU cannot use it (${why})` };
}

export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`Agent configuration is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.GUESTHOUSE_DATA_DIR);
  return {
    dataDir,
    guestsDir: path.join(dataDir, "guests"),
    pools: parsePools(e.GUESTHOUSE_STORAGE, path.join(dataDir, "disks")),
    secretsDir: path.join(dataDir, "secrets"),
    uploadLimitBytes: e.GUESTHOUSE_UPLOAD_LIMIT,
    serialLogBytes: e.GUESTHOUSE_SERIAL_LOG_BYTES,
    vncPasswordSeconds: e.GUESTHOUSE_VNC_PASSWORD_SECONDS,
    isoDir: path.resolve(e.GUESTHOUSE_IMAGE_DIR ?? path.join(dataDir, "images")),
    socketPath: path.resolve(e.GUESTHOUSE_AGENT_SOCKET ?? path.join(dataDir, "agent.sock")),
    ...(e.GUESTHOUSE_ACCEL === "auto"
      ? (() => {
          const { accelerator, reason } = detectAccelerator();
          return { accelerator, acceleratorReason: reason };
        })()
      : { accelerator: e.GUESTHOUSE_ACCEL, acceleratorReason: "set by GUESTHOUSE_ACCEL" }),
  };
}

/** "name=/abs/path,…" plus the default folder; names are checked like every pool name. */
export function parsePools(text: string | undefined, defaultDir: string): Record<string, string> {
  const pools: Record<string, string> = { [DEFAULT_POOL]: defaultDir };
  for (const entry of (text ?? "").split(",").map((e) => e.trim()).filter(Boolean)) {
    const eq = entry.indexOf("=");
    const name = entry.slice(0, eq);
    const dir = entry.slice(eq + 1);
    if (eq < 1 || !poolName.safeParse(name).success || !path.isAbsolute(dir)) {
      throw new Error(`GUESTHOUSE_STORAGE: "${entry}" is not name=/absolute/path (names: lowercase letters, digits, '_', '-').`);
    }
    if (Object.hasOwn(pools, name) || name === ISO_POOL) throw new Error(`GUESTHOUSE_STORAGE: the name "${name}" is taken.`);
    pools[name] = path.resolve(dir);
  }
  return pools;
}
