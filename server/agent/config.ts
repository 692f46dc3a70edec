/** The agent's configuration, read from the environment once and validated. */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { Accelerator } from "../domain/types";

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
}

/** KVM when /dev/kvm can be opened for reading and writing, else TCG. */
export function detectAccelerator(): Accelerator {
  try {
    fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK);
    return "kvm";
  } catch {
    return "tcg";
  }
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
    accelerator: e.GUESTHOUSE_ACCEL === "auto" ? detectAccelerator() : e.GUESTHOUSE_ACCEL,
  };
}
