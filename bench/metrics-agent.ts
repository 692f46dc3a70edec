/**
 * What the metrics cost the agent: its own CPU time while 50 running guests are sampled
 * every 10 s (and the web's fetch of each tick is answered), against the same agent with
 * sampling off (GUESTHOUSE_METRICS_INTERVAL_MS=0), the same guests, in the same run.
 *
 *   node --import tsx bench/metrics-agent.ts
 *   BENCH_GUESTS=50 BENCH_SECONDS=120 node --import tsx bench/metrics-agent.ts
 *
 * The guests are the demo guest (1 vCPU, 64 MiB, a qcow2 disk, a user-mode card), paused
 * once started: sampling a paused guest costs the agent the same QMP calls and /proc reads
 * as a busy one, and 50 busy TCG guests would leave the agent no core to be measured on.
 * The agent is restarted between the rows (it adopts the guests), the order alternates
 * over BENCH_ROUNDS rounds.
 *
 * Target: (agent CPU with sampling − without) ≤ 1 % of one core. Prints PASS or MISS and
 * exits 0 either way (1 only if the benchmark itself could not run).
 */
import { killQemusUnder, startTestAgent, type TestAgent } from "../tests/helpers/agent";
import { createTestImage, testDisk, testSpec } from "../tests/helpers/specs";
import { cpuTimeMs, machineLine, median, missingPrerequisite, sleep, verdict } from "./stats";

const GUESTS = Number(process.env.BENCH_GUESTS ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 120);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const INTERVAL_MS = 10_000;

let agent: TestAgent | null = null;

/** The agent's CPU time over SECONDS, asking for the new ticks every interval as the web does. */
async function measure(): Promise<{ cpuMs: number; ticks: number; guestsPerTick: number }> {
  const pid = agent!.process.pid!;
  // Let the restart settle (adoption, the first tick) before the window opens.
  await sleep(3000);
  const first = await agent!.client.metrics();
  let cursor = { boot: first.boot, seq: first.ticks.at(-1)?.seq ?? 0 };
  let ticks = 0;
  let guestsSeen = 0;
  const start = cpuTimeMs(pid)!;
  const until = Date.now() + SECONDS * 1000;
  while (Date.now() < until) {
    await sleep(Math.min(INTERVAL_MS, until - Date.now()));
    const batch = await agent!.client.metrics(cursor.boot, cursor.seq);
    ticks += batch.ticks.length;
    for (const t of batch.ticks) guestsSeen += Object.keys(t.guests).length;
    if (batch.ticks.length) cursor = { boot: batch.boot, seq: batch.ticks.at(-1)!.seq };
  }
  const cpuMs = cpuTimeMs(pid)! - start;
  return { cpuMs, ticks, guestsPerTick: ticks ? guestsSeen / ticks : 0 };
}

async function restartWith(intervalMs: number): Promise<void> {
  await agent!.kill();
  process.env.GUESTHOUSE_METRICS_INTERVAL_MS = String(intervalMs);
  await agent!.restart();
}

async function main(): Promise<number> {
  const missing = missingPrerequisite({ build: false });
  if (missing) {
    console.error(missing);
    return 1;
  }
  console.log(`metrics-agent: ${GUESTS} guests, ${SECONDS} s per row, ${ROUNDS} rounds`);
  console.log(`machine: ${machineLine()}`);
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    // The test agent's launch reads its environment from process.env at each (re)start.
    process.env.GUESTHOUSE_METRICS_INTERVAL_MS = String(INTERVAL_MS);
    agent = await startTestAgent();
    const started = Date.now();
    for (let i = 0; i < GUESTS; i++) {
      const n = String(i).padStart(4, "0");
      await createTestImage(agent.client, `volbench${n}`, "qcow2", 1);
      const spec = testSpec(`guestbench${n}`, {
        memoryMiB: 64,
        disks: [testDisk(`volbench${n}`)],
        nics: [{ mac: `52:54:00:be:${n.slice(0, 2)}:${n.slice(2)}`, model: "virtio", mode: "user", isolated: true, forwards: [] }],
      });
      await agent.client.start(spec);
      await agent.client.pause(spec.id);
    }
    console.log(`started and paused ${GUESTS} guests in ${((Date.now() - started) / 1000).toFixed(0)} s`);

    const on: number[] = [];
    const off: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (["on", "off"] as const) : (["off", "on"] as const);
      for (const row of order) {
        await restartWith(row === "on" ? INTERVAL_MS : 0);
        const m = await measure();
        const percent = (m.cpuMs / (SECONDS * 1000)) * 100;
        (row === "on" ? on : off).push(percent);
        console.log(`round ${round + 1} ${row.padEnd(3)}: agent CPU ${m.cpuMs.toFixed(0)} ms in ${SECONDS} s = ${percent.toFixed(3)} % of a core; ${m.ticks} ticks of ${m.guestsPerTick.toFixed(1)} guests`);
      }
    }
    const cost = median(on) - median(off);
    console.log("");
    console.log(`agent with sampling (median): ${median(on).toFixed(3)} % of one core`);
    console.log(`agent without sampling (median): ${median(off).toFixed(3)} % of one core`);
    console.log(`cost of sampling ${GUESTS} guests every ${INTERVAL_MS / 1000} s: ${cost.toFixed(3)} % of one core (${((cost / 100) * INTERVAL_MS / GUESTS).toFixed(2)} ms of CPU per guest per tick)`);
    console.log(`ratio to the target (1 % of one core): ${(cost / 1).toFixed(2)}`);
    console.log(`target: cost ${cost.toFixed(3)} % <= 1 %: ${verdict(cost <= 1)}`);
    console.log(`machine after: ${machineLine()}`);
    return 0;
  } catch (err) {
    console.error("metrics-agent: the benchmark failed:", err);
    if (agent) console.error(`agent output:\n${agent.output().slice(-3000)}`);
    return 1;
  } finally {
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function cleanup(): Promise<void> {
  if (!agent) return;
  const a = agent;
  agent = null;
  await a.cleanup().catch(() => killQemusUnder(a.dataDir));
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
