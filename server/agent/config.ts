/** The agent's configuration, read from the environment once and validated. */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { Accelerator } from "../domain/types";
import { QEMU_BINARY } from "../qemu/args";

const envSchema = z.object({
  GUESTHOUSE_DATA_DIR: z.string().min(1).default(".data"),
  GUESTHOUSE_IMAGE_DIR: z.string().min(1).optional(),
  GUESTHOUSE_AGENT_SOCKET: z.string().min(1).optional(),
  GUESTHOUSE_ACCEL: z.enum(["auto", "kvm", "tcg"]).default("auto"),
});

export interface AgentConfig {
  dataDir: string;
  /** One state folder per guest: `<guestsDir>/<guest id>/`. */
  guestsDir: string;
  disksDir: string;
  isoDir: string;
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
    disksDir: path.join(dataDir, "disks"),
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
