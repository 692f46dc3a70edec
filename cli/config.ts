/**
 * The CLI's remotes: named dashboards, each with its address and an API token, kept in
 * the user's config file (mode 0600, as it holds tokens). `GUESTHOUSE_CONFIG` names
 * another file; `GUESTHOUSE_URL` with `GUESTHOUSE_TOKEN` use a dashboard without one.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { UsageError } from "./errors";

export interface Remote {
  url: string;
  token: string;
}

export interface Config {
  current: string | null;
  remotes: Record<string, Remote>;
}

export function configPath(): string {
  if (process.env.GUESTHOUSE_CONFIG) return process.env.GUESTHOUSE_CONFIG;
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  return path.join(base, "guesthouse", "config.json");
}

export function readConfig(): Config {
  const file = configPath();
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { current: null, remotes: {} };
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as Partial<Config>;
    return { current: parsed.current ?? null, remotes: parsed.remotes ?? {} };
  } catch {
    throw new UsageError(`${file} is not valid JSON; fix it or remove it and log in again.`);
  }
}

/** Written whole to a new file, then renamed over the old one, readable by its owner only. */
export function writeConfig(config: Config): void {
  const file = configPath();
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(temp, file);
}

/** The remote a command talks to: `--remote`, else the environment's, else the current one. */
export function remoteFor(name: string | undefined): Remote & { name: string } {
  if (!name && process.env.GUESTHOUSE_URL && process.env.GUESTHOUSE_TOKEN) {
    return { name: "(environment)", url: process.env.GUESTHOUSE_URL, token: process.env.GUESTHOUSE_TOKEN };
  }
  const config = readConfig();
  const chosen = name ?? config.current;
  if (!chosen) throw new UsageError("No dashboard yet: run `guesthouse login <url>` first (or set GUESTHOUSE_URL and GUESTHOUSE_TOKEN).");
  const remote = config.remotes[chosen];
  if (!remote) throw new UsageError(`There is no remote "${chosen}"; see \`guesthouse remote list\`.`);
  return { name: chosen, ...remote };
}
