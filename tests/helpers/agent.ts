/**
 * Runs a real agent process for a test, in its own short data folder under /tmp
 * (unix socket paths are limited to 108 bytes), with the demo ISO in its image folder.
 * cleanup() force-stops every QEMU the folder's guests started and removes the folder.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { AgentClient } from "../../server/agent-client";
import { cgroup2Mount } from "../../server/agent/cgroups";

export const DEMO_ISO = path.resolve(".cache/fixtures/demo.iso");

export interface TestAgent {
  dataDir: string;
  socketPath: string;
  client: AgentClient;
  /** The cgroup folder its guests' cgroups are made in (the agent's to write, as its data folder), or null. */
  cgroupDir: string | null;
  process: ChildProcess;
  output(): string;
  /** SIGKILL the agent (its guests keep running). */
  kill(): Promise<void>;
  /** Start the agent again on the same folder. */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

/** `netns`: run the agent inside this network namespace (its networks are made there, not on the host). */
export async function startTestAgent(env: Record<string, string> = {}, options: { netns?: string } = {}): Promise<TestAgent> {
  if (!fs.existsSync(DEMO_ISO)) throw new Error(`${DEMO_ISO} is missing: run scripts/fixtures.sh (scripts/test.sh does).`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-"));
  // QEMU's users reach the guests' run folders through it (they cannot list it).
  fs.chmodSync(dataDir, 0o711);
  const socketPath = path.join(dataDir, "agent.sock");
  // Its guests' cgroups in a parent of its own, which cleanup removes (see server/agent/cgroups.ts).
  // (An agent in a network namespace sees /sys mounted anew, without the hierarchy: it finds none.)
  const cgroupMount = options.netns ? null : cgroup2Mount(fs.readFileSync("/proc/self/mountinfo", "utf8"));
  let cgroupDir = cgroupMount && !("GUESTHOUSE_CGROUP" in env) ? path.join(cgroupMount, "guesthouse-tests", path.basename(dataDir)) : null;
  if (cgroupDir) {
    try {
      fs.mkdirSync(path.dirname(cgroupDir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") cgroupDir = null;
    }
  }
  if (cgroupDir) env = { GUESTHOUSE_CGROUP: cgroupDir, ...env };
  fs.mkdirSync(path.join(dataDir, "images"));
  fs.copyFileSync(DEMO_ISO, path.join(dataDir, "images", "demo.iso"));
  let out = "";

  const launch = async (): Promise<ChildProcess> => {
    const command = [process.execPath, "--import", "tsx", "server/agent/main.ts"];
    const [file, ...args] = options.netns ? ["ip", "netns", "exec", options.netns, ...command] : command;
    const child = spawn(file!, args, {
      env: { ...process.env, GUESTHOUSE_DATA_DIR: dataDir, GUESTHOUSE_AGENT_SOCKET: socketPath, GUESTHOUSE_RUN_DIR: path.join(dataDir, "run"), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    const deadline = Date.now() + 20_000;
    while (!(await listening(socketPath))) {
      if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}: ${out}`);
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`agent did not listen within 20 s: ${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return child;
  };

  let first: ChildProcess;
  try {
    first = await launch();
  } catch (err) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }

  const agent: TestAgent = {
    dataDir,
    socketPath,
    client: new AgentClient(`unix:${socketPath}`),
    cgroupDir,
    process: first,
    output: () => out,
    async kill() {
      const exited = new Promise((r) => agent.process.once("exit", r));
      agent.process.kill("SIGKILL");
      await exited;
    },
    async restart() {
      agent.process = await launch();
    },
    async cleanup() {
      if (agent.process.exitCode === null && agent.process.signalCode === null) {
        const exited = new Promise((r) => agent.process.once("exit", r));
        agent.process.kill("SIGTERM");
        await exited;
      }
      await killQemusUnder(dataDir);
      if (cgroupDir) await removeCgroups(cgroupDir);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return agent;
}

/** Removes a test agent's cgroup parent and its guests' cgroups (each empty once its QEMU is gone; waited for, bounded). */
async function removeCgroups(dir: string): Promise<void> {
  if (!fs.existsSync(dir)) return;
  await waitFor(`the test agent's cgroups in ${dir} to go`, () => {
    for (const child of fs.readdirSync(dir, { withFileTypes: true })) {
      if (child.isDirectory()) {
        try {
          fs.rmdirSync(path.join(dir, child.name));
        } catch {
          return false;
        }
      }
    }
    fs.rmdirSync(dir);
    return true;
  }, 10_000);
  // The shared parent goes with the last test agent (another one's cgroups keep it).
  try {
    fs.rmdirSync(path.dirname(dir));
  } catch {
    // in use
  }
}

function listening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path: socketPath });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Pids of QEMU processes whose command line mentions this folder. */
export function qemuPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      // By its program's name: run by PATH ("qemu-system-x86_64") or by a full path (a wrapper's exec).
      if (path.basename(cmdline.split("\0")[0] ?? "").startsWith("qemu-system") && cmdline.includes(dir)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export async function killQemusUnder(dir: string): Promise<void> {
  for (const pid of qemuPidsUnder(dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while (qemuPidsUnder(dir).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/** Waits until check() returns a truthy value, or fails with what it was waiting for. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 60_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
}

/** The promise's value, or a failure naming what it was waiting for once timeoutMs have passed. */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** True once the process has exited (a zombie whose parent died unreaped counts as exited). */
export function processGone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}
