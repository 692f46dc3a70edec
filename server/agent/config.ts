/** The agent's configuration, read from the environment once and validated. */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { DEFAULT_POOL, ISO_POOL, type Accelerator } from "../domain/types";
import { poolName } from "../domain/validation";
import { VNC_BASE_PORT } from "../qemu/args";
import { checkHostQemu, type AcceleratorMode } from "./host-qemu";
import { assertUidRangeUnused, parseUidRange, QemuUsers, type UidRange } from "./qemu-user";
import { DEFAULT_QEMU_IMG_JOBS } from "./tasks";
import { certificateNames, isCertificateName, isWildcardAddress } from "./tls";

const envSchema = z.object({
  GUESTHOUSE_DATA_DIR: z.string().min(1).default(".data"),
  GUESTHOUSE_IMAGE_DIR: z.string().min(1).optional(),
  GUESTHOUSE_AGENT_SOCKET: z.string().min(1).optional(),
  GUESTHOUSE_ACCEL: z.enum(["auto", "kvm", "tcg"]).default("auto"),
  /** Where the KVM probe's verdict is remembered (default <data>/accelerator.json). */
  GUESTHOUSE_ACCEL_CACHE: z.string().min(1).optional(),
  /** The uids guests' QEMUs run as, one each while it runs (the last is the KVM probe's): "first-last". */
  GUESTHOUSE_QEMU_UIDS: z.string().default("200000-200999"),
  /** Where guests' run folders (QEMU's sockets) go; QEMU's users must be able to reach it (default /run/guesthouse as root). */
  GUESTHOUSE_RUN_DIR: z.string().min(1).optional(),
  /** Long qemu-img jobs (convert, full clone, check) run at once on this host; the rest queue (default 2). */
  GUESTHOUSE_QEMU_IMG_JOBS: z.coerce.number().int().min(1).max(64).default(DEFAULT_QEMU_IMG_JOBS),
  /** An interrupted upload's part is removed once it has not grown for this many hours (default 24). */
  GUESTHOUSE_UPLOAD_PART_HOURS: z.coerce.number().positive().max(24 * 365).default(24),
  /** More storage folders for disk images: "fast=/srv/nvme,bulk=/srv/hdd" (name=absolute path). */
  GUESTHOUSE_STORAGE: z.string().optional(),
  /** The largest upload accepted, in bytes (default 64 GiB). */
  GUESTHOUSE_UPLOAD_LIMIT: z.coerce.number().int().positive().default(64 * 2 ** 30),
  /** A guest's serial log is rotated (into serial.log.1) once it reaches this many bytes (default 1 MiB). */
  GUESTHOUSE_SERIAL_LOG_BYTES: z.coerce.number().int().min(1024).default(2 ** 20),
  /** How long a one-time VNC password stays valid, in seconds (default 30; tests shorten it). */
  GUESTHOUSE_VNC_PASSWORD_SECONDS: z.coerce.number().int().min(2).max(3600).default(30),
  /** Optional, off by default: a TLS-encrypted VNC endpoint per running guest, for native viewers. */
  GUESTHOUSE_VNC_TLS: z.enum(["off", "on"]).default("off"),
  /** Where the TLS VNC endpoints listen: an IP address (default every IPv4 interface). */
  GUESTHOUSE_VNC_TLS_ADDRESS: z
    .string()
    .refine((a) => net.isIP(a) !== 0, "must be an IP address, such as 0.0.0.0, 192.168.1.10 or ::")
    .default("0.0.0.0"),
  /** The TCP ports guests' TLS VNC endpoints may take: "first-last" or one port, at least 5900 (VNC display 0). */
  GUESTHOUSE_VNC_TLS_PORTS: z.string().default("5900-5999"),
  /** More names or IP addresses viewers reach the host by, for its certificate: "vm.example.com,10.0.0.5". */
  GUESTHOUSE_VNC_TLS_NAMES: z.string().optional(),
  /** How long a native viewer's one-time VNC password stays valid, in seconds (default 60). */
  GUESTHOUSE_VNC_TLS_PASSWORD_SECONDS: z.coerce.number().int().min(5).max(3600).default(60),
  /** The host ports guests' port forwards may take: "first-last" (default 20000-29999). */
  GUESTHOUSE_FORWARD_PORTS: z.string().default("20000-29999"),
  /** The address port forwards listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface). */
  GUESTHOUSE_FORWARD_ADDRESS: z
    .string()
    .refine((a) => net.isIP(a) === 4, "must be an IPv4 address, such as 127.0.0.1, 0.0.0.0 or 192.168.1.10 (QEMU's user networking forwards IPv4)")
    .default("127.0.0.1"),
  /** How often every running guest and the host are sampled for the metrics, in ms (default 10000; 0: no sampling). */
  GUESTHOUSE_METRICS_INTERVAL_MS: z.coerce
    .number()
    .int()
    .refine((ms) => ms === 0 || (ms >= 500 && ms <= 300_000), "must be 0 (off) or 500 to 300000 ms")
    .default(10_000),
  /** The cgroup v2 folder guests' cgroups are made in (default <cgroup2 mount>/guesthouse), or "off". */
  GUESTHOUSE_CGROUP: z
    .string()
    .refine((v) => v === "off" || path.isAbsolute(v), "must be an absolute path in the cgroup v2 hierarchy, or off")
    .optional(),
});

export { DEFAULT_POOL, ISO_POOL };

/** The agent's settings, read from the environment. */
export interface AgentSettings {
  dataDir: string;
  /** One state folder per guest: `<guestsDir>/<guest id>/`. */
  guestsDir: string;
  /** Storage folders for disk images, by name (DEFAULT_POOL always among them). */
  pools: Record<string, string>;
  isoDir: string;
  /** Encrypted volumes' passphrases, one 0600 file each. */
  secretsDir: string;
  uploadLimitBytes: number;
  /** How long an interrupted upload's part is kept after it last grew, in milliseconds. */
  uploadPartMs: number;
  /** Long qemu-img jobs at once (the rest queue). */
  qemuImgJobs: number;
  /** The uids QEMU runs as (used when the agent is root). */
  qemuUids: UidRange;
  /** Guests' run folders: `<runDir>/<guest id>/`, QEMU's sockets. */
  runDir: string;
  /** The size at which a guest's serial log is rotated; serial.log and serial.log.1 each stay about this size. */
  serialLogBytes: number;
  /** The lifetime of a one-time VNC password (QMP expire_password), in seconds. */
  vncPasswordSeconds: number;
  /** The optional TLS VNC endpoint for native viewers; null when off (the default). */
  vncTls: VncTlsConfig | null;
  /** Where guests' port forwards may listen: this address, these ports only. */
  forwards: ForwardPolicy;
  socketPath: string;
  /** GUESTHOUSE_ACCEL: "auto" runs the KVM probe at start. */
  accelMode: AcceleratorMode;
  /** The file the KVM probe's verdict is remembered in. */
  accelCacheFile: string;
  /** The metrics' sampling interval (server/agent/metrics/sampler.ts), ms; 0: off (the web then keeps no history of this host). */
  metricsIntervalMs: number;
  /** GUESTHOUSE_CGROUP: the guests' cgroups' parent, "off", or undefined for automatic (server/agent/cgroups.ts). */
  cgroup: string | undefined;
}

/** The settings plus what the agent found out about its host's QEMU at start. */
export interface AgentConfig extends AgentSettings {
  accelerator: Accelerator;
  /** Why this accelerator was chosen, shown on the dashboard. */
  acceleratorReason: string;
  /** QEMU's version, "7.2.22". */
  qemuVersion: string;
}

/** GUESTHOUSE_VNC_TLS=on: each running guest gets a second VNC display on TCP, behind TLS and a password. */
export interface VncTlsConfig {
  /** `<data>/tls`: the CA, the server certificate and key (QEMU's x509 folder). */
  dir: string;
  /** The IP address QEMU listens on. */
  address: string;
  /** The range of TCP ports guests take one each of, inclusive. */
  firstPort: number;
  lastPort: number;
  /** The names the server certificate carries (host name, extra names, a specific address). */
  names: string[];
  /** What a viewer connects to: the first extra name, else a specific address, else the host name. */
  connectHost: string;
  passwordSeconds: number;
}

/**
 * Where guests' port forwards may listen. A range of its own keeps them off the
 * dashboard's port, the TLS VNC ports (refused at start if the ranges overlap) and any
 * other service of the host; the address keeps them off the network unless an admin opens it.
 */
export interface ForwardPolicy {
  address: string;
  firstPort: number;
  lastPort: number;
}

/** "20000-29999": the range guests' port forwards may take (unprivileged ports only). */
export function parseForwardPorts(text: string): { firstPort: number; lastPort: number } {
  const match = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = match ? Number(match[1]) : NaN;
  const last = match ? Number(match[2]) : NaN;
  if (!(first >= 1024 && last >= first && last <= 65535)) {
    throw new Error(`GUESTHOUSE_FORWARD_PORTS: "${text}" is not a port range such as 20000-29999 (from 1024 to 65535).`);
  }
  return { firstPort: first, lastPort: last };
}

/** "5900-5999" or "5901": an inclusive range of ports QEMU can express as VNC displays (port - 5900). */
export function parsePortRange(text: string): { firstPort: number; lastPort: number } {
  const match = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  const first = match ? Number(match[1]) : NaN;
  const last = match ? Number(match[2] ?? match[1]) : NaN;
  if (!(first >= VNC_BASE_PORT && last >= first && last <= 65535)) {
    throw new Error(`GUESTHOUSE_VNC_TLS_PORTS: "${text}" is not a port range such as 5900-5999 (QEMU's VNC ports start at ${VNC_BASE_PORT}; at most 65535).`);
  }
  return { firstPort: first, lastPort: last };
}

/** "a.example.com, 10.0.0.5": each a DNS name or an IP address, since each goes into the certificate. */
export function parseCertificateNames(text: string | undefined): string[] {
  const names = (text ?? "").split(",").map((n) => n.trim()).filter(Boolean);
  for (const name of names) {
    if (!isCertificateName(name)) throw new Error(`GUESTHOUSE_VNC_TLS_NAMES: "${name}" is neither a DNS name nor an IP address.`);
  }
  return names;
}

export function vncTlsConfig(e: z.infer<typeof envSchema>, dataDir: string, hostname = os.hostname()): VncTlsConfig | null {
  if (e.GUESTHOUSE_VNC_TLS !== "on") return null;
  const extra = parseCertificateNames(e.GUESTHOUSE_VNC_TLS_NAMES);
  const address = e.GUESTHOUSE_VNC_TLS_ADDRESS;
  const names = certificateNames(hostname, extra, address);
  if (names.length === 0) throw new Error(`GUESTHOUSE_VNC_TLS: the host name "${hostname}" cannot go into a certificate; give GUESTHOUSE_VNC_TLS_NAMES.`);
  return {
    dir: path.join(dataDir, "tls"),
    address,
    ...parsePortRange(e.GUESTHOUSE_VNC_TLS_PORTS),
    names,
    connectHost: extra[0] ?? (isWildcardAddress(address) ? names[0]! : address),
    passwordSeconds: e.GUESTHOUSE_VNC_TLS_PASSWORD_SECONDS,
  };
}

/** The settings from the environment, validated; throws naming each bad variable. */
export function readAgentSettings(env: NodeJS.ProcessEnv = process.env): AgentSettings {
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
    uploadPartMs: Math.round(e.GUESTHOUSE_UPLOAD_PART_HOURS * 3600_000),
    qemuImgJobs: e.GUESTHOUSE_QEMU_IMG_JOBS,
    qemuUids: parseUidRange(e.GUESTHOUSE_QEMU_UIDS),
    runDir: path.resolve(e.GUESTHOUSE_RUN_DIR ?? (process.getuid?.() === 0 ? "/run/guesthouse" : path.join(dataDir, "run"))),
    serialLogBytes: e.GUESTHOUSE_SERIAL_LOG_BYTES,
    vncPasswordSeconds: e.GUESTHOUSE_VNC_PASSWORD_SECONDS,
    vncTls: vncTlsConfig(e, dataDir),
    forwards: forwardPolicy(e),
    isoDir: path.resolve(e.GUESTHOUSE_IMAGE_DIR ?? path.join(dataDir, "images")),
    socketPath: path.resolve(e.GUESTHOUSE_AGENT_SOCKET ?? path.join(dataDir, "agent.sock")),
    accelMode: e.GUESTHOUSE_ACCEL,
    accelCacheFile: path.resolve(e.GUESTHOUSE_ACCEL_CACHE ?? path.join(dataDir, "accelerator.json")),
    metricsIntervalMs: e.GUESTHOUSE_METRICS_INTERVAL_MS,
    cgroup: e.GUESTHOUSE_CGROUP,
  };
}

/**
 * The agent's whole configuration: the settings, then its host's QEMU (which must be
 * installed) and the accelerator its guests get (server/agent/host-qemu.ts).
 */
export async function loadAgentConfig(env: NodeJS.ProcessEnv = process.env, log?: (line: string) => void): Promise<AgentConfig> {
  const settings = readAgentSettings(env);
  const users = QemuUsers.forAgent(settings.qemuUids);
  if (users.range) assertUidRangeUnused(users.range);
  const qemu = await checkHostQemu({ mode: settings.accelMode, cacheFile: settings.accelCacheFile, log, identity: users.probe() });
  return { ...settings, accelerator: qemu.accelerator, acceleratorReason: qemu.acceleratorReason, qemuVersion: qemu.version };
}

/**
 * Refuses storage folders that overlap: one inside another (a file would be two disks, or
 * an ISO and a disk), or one holding the data folder (its secrets, guests' sockets and
 * the database would be images to qemu-img), or one inside the data folder other than
 * its own `disks` and `images`. Compared by real path, once the folders exist.
 */
export function assertFoldersApart(dataDir: string, pools: Record<string, string>, isoDir: string): void {
  const real = (dir: string) => {
    try {
      return fs.realpathSync(dir);
    } catch {
      return path.resolve(dir);
    }
  };
  const inside = (child: string, parent: string) => child === parent || child.startsWith(`${parent}${path.sep}`);
  const data = real(dataDir);
  const folders = [...Object.entries(pools).map(([name, dir]) => ({ name: `storage folder "${name}"`, dir: real(dir) })), { name: "the ISO folder", dir: real(isoDir) }];
  const own = new Set([real(path.join(dataDir, "disks")), real(path.join(dataDir, "images"))]);
  for (const a of folders) {
    if (inside(data, a.dir)) throw new Error(`${a.name} (${a.dir}) holds the data folder ${data}; its secrets and database would be reachable as images. Choose a folder of its own.`);
    if (inside(a.dir, data) && !own.has(a.dir)) throw new Error(`${a.name} (${a.dir}) lies inside the data folder ${data}. Choose a folder outside it.`);
  }
  for (const [i, a] of folders.entries()) {
    for (const b of folders.slice(i + 1)) {
      if (inside(a.dir, b.dir) || inside(b.dir, a.dir)) throw new Error(`${a.name} (${a.dir}) and ${b.name} (${b.dir}) overlap: a file would belong to both. Give each a folder of its own.`);
    }
  }
}

/** The port forward policy; refuses a range that overlaps the TLS VNC ports (one port, two owners). */
function forwardPolicy(e: z.infer<typeof envSchema>): ForwardPolicy {
  const range = parseForwardPorts(e.GUESTHOUSE_FORWARD_PORTS);
  if (e.GUESTHOUSE_VNC_TLS === "on") {
    const tls = parsePortRange(e.GUESTHOUSE_VNC_TLS_PORTS);
    if (range.firstPort <= tls.lastPort && tls.firstPort <= range.lastPort) {
      throw new Error(`GUESTHOUSE_FORWARD_PORTS (${e.GUESTHOUSE_FORWARD_PORTS}) overlaps GUESTHOUSE_VNC_TLS_PORTS (${e.GUESTHOUSE_VNC_TLS_PORTS}): give each its own ports.`);
    }
  }
  return { address: e.GUESTHOUSE_FORWARD_ADDRESS, ...range };
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
