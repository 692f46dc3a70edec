/**
 * The whole product for a browser test: a real agent, a fresh migrated SQLite
 * database, the bootstrap rows, and the real web server (custom server + the built
 * Next.js app) on a free loopback port.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createTestDb, type TestDb } from "./db";
import { startTestAgent, type TestAgent } from "./agent";
import { freePort } from "./net";

export interface TestStack {
  agent: TestAgent;
  database: TestDb;
  baseUrl: string;
  port: number;
  admin: { username: string; password: string };
  /** The web server's environment, for starting another one beside it. */
  env: NodeJS.ProcessEnv;
  output(): string;
  cleanup(): Promise<void>;
}

/**
 * `agentEnv`: more environment for the agent (a stand-in QEMU on its PATH, say);
 * `webEnv`: more for the web server (shorter time limits).
 */
export async function startTestStack(options: { agentEnv?: Record<string, string>; webEnv?: Record<string, string>; agentNetns?: string } = {}): Promise<TestStack> {
  // An agent that makes managed networks runs in a network namespace of the test's (the web reaches it by its socket).
  const agent = await startTestAgent(options.agentEnv ?? {}, options.agentNetns ? { netns: options.agentNetns } : {});
  const database = await createTestDb();
  const port = await freePort();
  const admin = { username: "admin", password: `pw-${Math.random().toString(36).slice(2)}` };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "production",
    DATABASE_URL: database.url,
    GUESTHOUSE_DATA_DIR: agent.dataDir,
    GUESTHOUSE_AGENT_SOCKET: agent.socketPath,
    GUESTHOUSE_PORT: String(port),
    GUESTHOUSE_HOST: "127.0.0.1",
    GUESTHOUSE_ADMIN_PASSWORD: admin.password,
    ...options.webEnv,
  };
  const setup = spawnSync(process.execPath, ["--import", "tsx", "server/setup/bootstrap.ts"], { env, encoding: "utf8" });
  if (setup.status !== 0) throw new Error(`bootstrap failed: ${setup.stderr}${setup.stdout}`);

  let out = "";
  const web: ChildProcess = spawn(process.execPath, ["--import", "tsx", "server/web/main.ts"], { env, stdio: ["ignore", "pipe", "pipe"] });
  web.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  web.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 60_000;
  while (!out.includes("Guesthouse is at")) {
    if (web.exitCode !== null) throw new Error(`web exited ${web.exitCode}: ${out}`);
    if (Date.now() > deadline) throw new Error(`web did not start within 60 s: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    agent,
    database,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    admin,
    env,
    output: () => out,
    async cleanup() {
      if (web.exitCode === null && web.signalCode === null) {
        const exited = new Promise((r) => web.once("exit", r));
        web.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        web.kill("SIGKILL");
      }
      await agent.cleanup();
      await database.cleanup();
    },
  };
}
