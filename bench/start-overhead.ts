/**
 * Start overhead of the agent: the time from a start request to "QMP answers
 * query-status", through the real agent (AgentClient.start on a test agent), against
 * spawning the very same QEMU argument array by hand in the same run.
 *
 *   node --import tsx bench/start-overhead.ts            (N=10 rounds each)
 *   BENCH_ROUNDS=20 BENCH_POLL_MS=20 node --import tsx bench/start-overhead.ts
 *
 * Target: median(agent) ≤ 1.10 × median(direct) + 30 ms. Prints PASS or MISS and exits 0
 * either way (1 only if the benchmark itself could not run).
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { GuestSpec } from "../server/domain/types";
import { QmpClient } from "../server/qemu/qmp";
import { guestInclude, specOf } from "../server/web/guests";
import { killQemusUnder, startTestAgent, type TestAgent } from "../tests/helpers/agent";
import { createTestDb, seedBasics, type TestDb } from "../tests/helpers/db";
import { machineLine, median, ms, percentile, sleep, verdict, missingPrerequisite } from "./stats";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
/** At least one: the agent's first start also prepares files the hand-run side copies (UEFI variables). */
const WARMUP = Math.max(1, Number(process.env.BENCH_WARMUP ?? 1));
/** How often the hand-run side looks for the QMP socket (the agent looks every 20 ms). */
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 5);
const START_TIMEOUT_MS = 30_000;
const QUIT_GRACE_MS = 3_000;

/**
 * The spec the dashboard would send for a guest with 1 vCPU, 256 MiB, no disk, the demo
 * ISO as CD-ROM and one user-mode NIC: made from database rows by the web's own specOf(),
 * so every other setting is the database's default for a new guest.
 */
async function makeSpec(database: TestDb, agent: TestAgent): Promise<GuestSpec> {
  const db = database.db;
  const { user, host, guest } = await seedBasics(db, `unix:${agent.socketPath}`);
  const info = await agent.client.host();
  const demo = info.isos.find((i) => i.name === "demo.iso");
  if (!demo) throw new Error(`the agent lists no demo.iso: ${JSON.stringify(info.isos)}`);
  const iso = await db.isoImage.create({ data: { hostId: host.id, name: demo.name, sizeBytes: BigInt(demo.sizeBytes) } });
  const network = await db.network.create({ data: { name: "user", mode: "user", ownerId: user.id, teamId: user.teamId, hostId: host.id } });
  await db.guest.update({
    where: { id: guest.id },
    data: {
      name: "bench-start",
      vcpus: 1,
      memoryMiB: 256,
      cdroms: { create: [{ isoId: iso.id }] },
      nics: { create: [{ mac: "52:54:00:be:00:01", model: "virtio", networkId: network.id }] },
    },
  });
  const row = await db.guest.findUniqueOrThrow({ where: { id: guest.id }, include: guestInclude });
  const spec = specOf(row);
  if (spec.disks.length || spec.cdroms.length !== 1 || spec.vcpus !== 1 || spec.memoryMiB !== 256) {
    throw new Error(`unexpected spec: ${JSON.stringify(spec)}`);
  }
  return spec;
}

interface DirectRun {
  child: ChildProcess;
  exited: Promise<void>;
  qmp: QmpClient | null;
}

interface DirectTimes {
  total: number;
  socket: number; // spawn → QMP socket file exists
  connect: number; // → greeting + qmp_capabilities done
}

/** Spawns the argument array as the agent does (own process group, minimal env, output to a log). */
async function startDirect(argv: string[], stateDir: string, run: { current: DirectRun | null }): Promise<DirectTimes> {
  const qmpPath = path.join(stateDir, "qmp.sock");
  const logPath = path.join(stateDir, "qemu.log");
  const t0 = performance.now();
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  for (const f of ["qmp.sock", "vnc.sock", "serial.sock", "qemu.pid"]) fs.rmSync(path.join(stateDir, f), { force: true });
  const log = fs.openSync(logPath, "w", 0o600);
  let child: ChildProcess;
  try {
    child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ["ignore", log, log],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" } as unknown as NodeJS.ProcessEnv,
    });
  } finally {
    fs.closeSync(log);
  }
  let gone = false;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      gone = true;
      resolve();
    });
    child.once("error", () => {
      gone = true;
      resolve();
    });
  });
  const current: DirectRun = { child, exited, qmp: null };
  run.current = current;

  const deadline = Date.now() + START_TIMEOUT_MS;
  let socketAt = 0;
  for (;;) {
    if (gone) throw new Error(`QEMU (by hand) exited early: ${fs.readFileSync(logPath, "utf8")}`);
    if (Date.now() > deadline) throw new Error("QEMU (by hand) did not open QMP in time");
    if (fs.existsSync(qmpPath)) {
      socketAt ||= performance.now();
      const qmp = new QmpClient();
      try {
        await qmp.connect(qmpPath);
        current.qmp = qmp;
        break;
      } catch {
        // listening not yet; try again
      }
    }
    await sleep(POLL_MS);
  }
  const connectedAt = performance.now();
  const status = await current.qmp!.execute<{ running: boolean; status: string }>("query-status");
  const total = performance.now() - t0;
  if (!status.running) throw new Error(`QEMU (by hand) is ${status.status}, not running`);
  return { total, socket: socketAt - t0, connect: connectedAt - t0 };
}

/** quit over QMP, SIGKILL to the group after a grace period; resolves once the process is gone. */
async function stopDirect(run: { current: DirectRun | null }): Promise<void> {
  const current = run.current;
  if (!current) return;
  current.qmp?.execute("quit", undefined, QUIT_GRACE_MS).catch(() => {});
  const quit = await Promise.race([current.exited.then(() => true), sleep(QUIT_GRACE_MS).then(() => false)]);
  if (!quit && current.child.pid) {
    try {
      process.kill(-current.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await current.exited;
  }
  await current.qmp?.close().catch(() => {});
  run.current = null;
}

/** The agent's own time for the start request, from its request log (GUESTHOUSE_AGENT_LOG=1). */
function agentServerMs(agent: TestAgent, id: string, before: number): number | null {
  const lines = agent.output().slice(before).split("\n");
  for (const line of lines) {
    const m = new RegExp(`^agent: POST /v1/guests/${id}/start 200 (\\d+)ms`).exec(line);
    if (m) return Number(m[1]);
  }
  return null;
}

async function main(): Promise<number> {
  const missing = missingPrerequisite({ build: false });
  if (missing) {
    console.error(missing);
    return 1;
  }
  console.log(`start-overhead: ${ROUNDS} rounds each (+${WARMUP} warm-up), alternating; direct side polls every ${POLL_MS} ms`);
  console.log(`machine: ${machineLine()}`);

  let agent: TestAgent | null = null;
  let database: TestDb | null = null;
  let spec: GuestSpec | null = null;
  let directDir: string | null = null;
  const direct: { current: DirectRun | null } = { current: null };
  const onSignal = () => {
    console.error("start-overhead: interrupted, cleaning up");
    void cleanup().finally(() => process.exit(130));
  };
  const cleanup = async () => {
    await stopDirect(direct).catch(() => {});
    if (directDir) {
      await killQemusUnder(directDir);
      fs.rmSync(directDir, { recursive: true, force: true });
      directDir = null;
    }
    if (agent) {
      if (spec) await agent.client.forceOff(spec.id).catch(() => {});
      await agent.cleanup();
      agent = null;
    }
    if (database) {
      await database.cleanup();
      database = null;
    }
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    agent = await startTestAgent({ GUESTHOUSE_AGENT_LOG: "1" });
    const host = await agent.client.host();
    console.log(`agent: QEMU ${host.qemuVersion}, accelerator ${host.accelerator} (${host.acceleratorReason})`);
    database = await createTestDb();
    const theSpec = await makeSpec(database, agent);
    spec = theSpec;
    console.log(`spec: ${JSON.stringify(theSpec)}`);

    // The same argv, with the agent's data folder swapped for our own.
    directDir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-direct-"));
    fs.mkdirSync(path.join(directDir, "images"));
    fs.copyFileSync(path.join(agent.dataDir, "images", "demo.iso"), path.join(directDir, "images", "demo.iso"));
    const agentArgv = await agent.client.argv(theSpec);
    const from = agent.dataDir;
    const to = directDir;
    const argv = agentArgv.map((a) => a.replaceAll(from, to));
    if (argv.some((a) => a.includes(from))) throw new Error("the argv still names the agent's folder");
    const stateDir = path.join(directDir, "guests", theSpec.id);
    const agentStateDir = path.join(from, "guests", theSpec.id);
    if (!argv.some((a) => a.includes(path.join(stateDir, "qmp.sock")))) {
      throw new Error(`the argv does not put QMP where expected: ${argv.join(" ")}`);
    }
    console.log(`argv (${argv.length} items): ${agentArgv.join(" ")}`);

    const agentTimes: number[] = [];
    const agentServer: number[] = [];
    const directTimes: DirectTimes[] = [];

    const runAgent = async (): Promise<number> => {
      const before = agent!.output().length;
      const t0 = performance.now();
      const status = await agent!.client.start(theSpec);
      const took = performance.now() - t0;
      if (status.state !== "running") throw new Error(`agent start ended in ${status.state}`);
      await agent!.client.forceOff(theSpec.id); // resolves once QEMU is gone
      await sleep(50); // let the log line arrive
      const server = agentServerMs(agent!, theSpec.id, before);
      if (server !== null) agentServer.push(server);
      return took;
    };
    const runDirect = async (): Promise<DirectTimes> => {
      try {
        return await startDirect(argv, stateDir, direct);
      } finally {
        await stopDirect(direct);
      }
    };

    /**
     * Files the agent prepares in the state folder before QEMU runs and QEMU only reads or
     * updates (a UEFI guest's variables): copied over once, after the agent's first start.
     */
    const prepareDirect = () => {
      const made = new Set(["qmp.sock", "vnc.sock", "serial.sock", "qemu.pid", "qemu.log", "serial.log", "argv.json"]);
      fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const named = new RegExp(`${agentStateDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/([^,/]+)`, "g");
      for (const name of new Set(agentArgv.flatMap((a) => [...a.matchAll(named)].map((m) => m[1]!)))) {
        const file = path.join(agentStateDir, name);
        if (made.has(name) || !fs.existsSync(file) || !fs.statSync(file).isFile()) continue;
        fs.copyFileSync(file, path.join(stateDir, name));
        console.log(`copied the agent-prepared ${name} for the hand-run side`);
      }
    };

    for (let i = 0; i < WARMUP; i++) {
      const a = await runAgent();
      if (i === 0) prepareDirect();
      const d = await runDirect();
      agentServer.length = 0;
      console.log(`warm-up ${i + 1}: agent ${ms(a)}, direct ${ms(d.total)} (not counted)`);
    }
    for (let i = 0; i < ROUNDS; i++) {
      // Alternate which goes first, so a drift in machine load hits both sides alike.
      const order = i % 2 === 0 ? (["agent", "direct"] as const) : (["direct", "agent"] as const);
      const line: string[] = [];
      for (const which of order) {
        await sleep(200);
        if (which === "agent") {
          const t = await runAgent();
          agentTimes.push(t);
          line.push(`agent ${ms(t)}${agentServer.length ? ` (agent-side ${agentServer.at(-1)} ms)` : ""}`);
        } else {
          const t = await runDirect();
          directTimes.push(t);
          line.push(`direct ${ms(t.total)} (socket at ${ms(t.socket)}, QMP connected at ${ms(t.connect)})`);
        }
      }
      console.log(`round ${String(i + 1).padStart(2)}: ${line.join(", ")}`);
    }

    const d = directTimes.map((t) => t.total);
    const agentMedian = median(agentTimes);
    const directMedian = median(d);
    const limit = 1.1 * directMedian + 30;
    const ok = agentMedian <= limit;
    console.log("");
    console.log("result                 median      p90       min       max");
    const row = (name: string, v: number[]) =>
      console.log(
        `${name.padEnd(20)} ${ms(median(v)).padStart(9)} ${ms(percentile(v, 90)).padStart(9)} ${ms(Math.min(...v)).padStart(9)} ${ms(Math.max(...v)).padStart(9)}`,
      );
    row("agent (client)", agentTimes);
    if (agentServer.length) row("  agent-side only", agentServer);
    row("direct (by hand)", d);
    row("  socket appears", directTimes.map((t) => t.socket));
    row("  QMP connected", directTimes.map((t) => t.connect));
    console.log("");
    console.log(`ratio median(agent)/median(direct) = ${(agentMedian / directMedian).toFixed(3)}`);
    console.log(`overhead median(agent) - median(direct) = ${ms(agentMedian - directMedian)}`);
    console.log(
      `target: agent median ${ms(agentMedian)} <= 1.10 x ${ms(directMedian)} + 30 ms = ${ms(limit)}: ${verdict(ok)}`,
    );
    console.log(`machine after: ${machineLine()}`);
    return 0;
  } catch (err) {
    console.error("start-overhead: the benchmark failed:", err);
    if (agent) console.error(`agent output:\n${agent.output().slice(-3000)}`);
    return 1;
  } finally {
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
