/**
 * The REST API's guest list against the guest list page, side by side in one run, on a
 * real web server and agent with 1,000 guests visible (3 of them running), and the
 * `guesthouse` CLI's `list` end to end (start-up included).
 *
 *   node --import tsx bench/api.ts
 *   BENCH_GUESTS=2000 BENCH_LOAD_SECONDS=10 node --import tsx bench/api.ts
 *
 * Rows:
 *   - GET /api/v1/guests (its first page of 100, as the page shows) with a token, and the
 *     page GET / with a session: medians over BENCH_REQUESTS requests each, one at a time;
 *   - the API at 200 requests/s for BENCH_LOAD_SECONDS (default 30) from autocannon on
 *     loopback (10 connections), its p99 and the rate it kept; the page at the same rate
 *     for a third of that time, for comparison, and GET /api/v1/roles (a fixed answer: the
 *     floor under any API request, its token, rate and scope checks and Next's routing);
 *   - `guesthouse list` (all 1,000, two API pages) and `guesthouse list -q guest-0001` (one
 *     guest) as a person runs them, against `node -e` doing the same single fetch (Node's
 *     own start-up, the floor).
 *
 * Targets: API median ≤ 30 ms; under load p99 ≤ 250 ms at 200 requests/s; CLI list
 * ≤ 300 ms. Prints PASS or MISS per target; exits 1 only if it could not run. Needs a
 * built app (`NODE_ENV=production npx next build`) and the demo ISO.
 */
import { spawnSync } from "node:child_process";
import autocannon from "autocannon";
import { createToken } from "../server/auth/api-tokens";
import { createSession, SESSION_COOKIE, userForSession } from "../server/auth/sessions";
import { guestInclude, specOf } from "../server/web/guests";
import { startTestStack, type TestStack } from "../tests/helpers/web";
import { guestTemplate, insertRows, makeRows } from "./seed";
import { machineLine, median, missingPrerequisite, ms, percentile, verdict, waitIdle } from "./stats";

const GUESTS = Number(process.env.BENCH_GUESTS ?? 1000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 50);
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 30);
const RATE = 200;
const API_MEDIAN_MS = 30;
const LOAD_P99_MS = 250;
const CLI_MS = 300;
const CLI_RUNS = Number(process.env.BENCH_CLI_RUNS ?? 15);

async function timed(url: string, headers: Record<string, string>, times: number): Promise<number[]> {
  const result: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    const res = await fetch(url, { headers });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
    result.push(performance.now() - t);
  }
  return result;
}

async function load(url: string, headers: Record<string, string>, seconds: number): Promise<{ p99: number; p50: number; rate: number; errors: number; non2xx: number }> {
  const result = await autocannon({ url, headers, connections: 10, overallRate: RATE, duration: seconds });
  return { p99: result.latency.p99, p50: result.latency.p50, rate: result.requests.average, errors: result.errors + result.timeouts, non2xx: result.non2xx };
}

function cli(args: string[], env: NodeJS.ProcessEnv, times: number): number[] {
  const result: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, args, { env, encoding: "utf8" });
    const took = performance.now() - t;
    if (r.status !== 0) throw new Error(`${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
    result.push(took);
  }
  return result;
}

async function main(): Promise<number> {
  const missing = missingPrerequisite({ build: true });
  if (missing) {
    console.error(missing);
    return 1;
  }
  console.log(`api: ${GUESTS} guests, ${REQUESTS} requests each, load ${RATE}/s for ${LOAD_SECONDS} s`);
  console.log(`machine: ${machineLine()}`);
  let stack: TestStack | null = null;
  const started: string[] = [];
  try {
    // The rate limit is a guard against runaway scripts; this run asks for more than its default on purpose.
    stack = await startTestStack({ webEnv: { GUESTHOUSE_API_RATE: "1000000" } });
    const db = stack.database.db;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const host = await db.host.findUniqueOrThrow({ where: { name: "local" } });
    const demo = (await stack.agent.client.host()).isos.find((i) => i.name === "demo.iso");
    if (!demo) throw new Error("the agent lists no demo.iso");
    const iso = await db.isoImage.create({ data: { hostId: host.id, name: demo.name, sizeBytes: BigInt(demo.sizeBytes) } });
    const network = await db.network.create({ data: { name: "user", mode: "user", ownerId: admin.id, teamId: admin.teamId, hostId: host.id } });
    const ctx = { ownerId: admin.id, teamId: admin.teamId, hostId: host.id, isoId: iso.id, networkId: network.id };
    const template = await guestTemplate();
    const running = [1, Math.floor(GUESTS / 2), GUESTS - 2];
    const runningRows = makeRows(template, running, ctx, 1);
    const pids: number[] = [];
    await insertRows(db, runningRows);
    for (const [k, g] of runningRows.guests.entries()) {
      const disk = runningRows.disks[k]!;
      await stack.agent.client.createImage({ pool: "default", file: disk.file, format: "qcow2", bytes: Number(disk.sizeBytes), volume: disk.volume });
      await db.guest.update({ where: { id: g.id }, data: { vcpus: 1, memoryMiB: 256 } });
      const status = await stack.agent.client.start(specOf(await db.guest.findUniqueOrThrow({ where: { id: g.id }, include: guestInclude })));
      if (status.state !== "running" || status.pid === null) throw new Error(`${g.name} did not start`);
      started.push(g.id);
      pids.push(status.pid);
    }
    // Booting guests (under TCG, busy for a while) would take CPU from what is measured.
    await waitIdle(pids);
    await insertRows(db, makeRows(template, [...Array(GUESTS).keys()].filter((i) => !running.includes(i)), ctx, 20));

    const session = await createSession(db, admin.id);
    const user = (await userForSession(db, session.secret))!;
    const { token } = await createToken(db, user, { name: "bench", scope: "read", days: 1 });
    const api = `${stack.baseUrl}/api/v1/guests`;
    const auth = { authorization: `Bearer ${token}` };
    const cookie = { cookie: `${SESSION_COOKIE}=${session.secret}` };
    const first = (await (await fetch(api, { headers: auth })).json()) as { total: number; items: unknown[] };
    if (first.total !== GUESTS) throw new Error(`the API sees ${first.total} guests, not ${GUESTS}`);

    // Warm both (first requests load code), then alternate, so neither gets a quieter machine.
    await timed(api, auth, 5);
    await timed(`${stack.baseUrl}/`, cookie, 5);
    const apiTimes: number[] = [];
    const pageTimes: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      apiTimes.push(...(await timed(api, auth, 1)));
      pageTimes.push(...(await timed(`${stack.baseUrl}/`, cookie, 1)));
    }
    const all = await timed(`${api}?pageSize=500`, auth, 10);
    const one = await timed(`${api}?pageSize=1`, auth, 20);
    const roles = await timed(`${stack.baseUrl}/api/v1/roles`, auth, 20);
    console.log("");
    console.log("one at a time                         median      p90");
    console.log(`GET /api/v1/guests (100 of ${GUESTS})      ${ms(median(apiTimes)).padStart(9)}  ${ms(percentile(apiTimes, 90)).padStart(8)}`);
    console.log(`GET /api/v1/guests?pageSize=500       ${ms(median(all)).padStart(9)}  ${ms(percentile(all, 90)).padStart(8)}`);
    console.log(`GET /api/v1/guests?pageSize=1         ${ms(median(one)).padStart(9)}  ${ms(percentile(one, 90)).padStart(8)}`);
    console.log(`GET /api/v1/roles (fixed answer)      ${ms(median(roles)).padStart(9)}  ${ms(percentile(roles, 90)).padStart(8)}`);
    console.log(`GET / (the page, 100 rows)            ${ms(median(pageTimes)).padStart(9)}  ${ms(percentile(pageTimes, 90)).padStart(8)}`);
    console.log(`ratio page / API: ${(median(pageTimes) / median(apiTimes)).toFixed(1)}×`);

    console.log("");
    const apiLoad = await load(api, auth, LOAD_SECONDS);
    const pageLoad = await load(`${stack.baseUrl}/`, cookie, Math.max(5, Math.round(LOAD_SECONDS / 3)));
    // The floor under any API answer: the token read, the rate, the scope, a fixed JSON body.
    const floorLoad = await load(`${stack.baseUrl}/api/v1/roles`, auth, Math.max(5, Math.round(LOAD_SECONDS / 3)));
    console.log(`at ${RATE}/s (autocannon, 10 connections)    p50       p99    kept/s  errors`);
    console.log(`API for ${LOAD_SECONDS} s                      ${ms(apiLoad.p50).padStart(8)} ${ms(apiLoad.p99).padStart(9)} ${apiLoad.rate.toFixed(0).padStart(8)}  ${apiLoad.errors + apiLoad.non2xx}`);
    console.log(`page for ${Math.max(5, Math.round(LOAD_SECONDS / 3))} s                      ${ms(pageLoad.p50).padStart(8)} ${ms(pageLoad.p99).padStart(9)} ${pageLoad.rate.toFixed(0).padStart(8)}  ${pageLoad.errors + pageLoad.non2xx}`);
    console.log(`GET /api/v1/roles (floor) ${Math.max(5, Math.round(LOAD_SECONDS / 3))} s         ${ms(floorLoad.p50).padStart(8)} ${ms(floorLoad.p99).padStart(9)} ${floorLoad.rate.toFixed(0).padStart(8)}  ${floorLoad.errors + floorLoad.non2xx}`);

    console.log("");
    const env = { ...process.env, GUESTHOUSE_URL: stack.baseUrl, GUESTHOUSE_TOKEN: token, GUESTHOUSE_CONFIG: "/nonexistent/guesthouse.json" };
    cli(["bin/guesthouse.js", "--version"], env, 1); // builds the bundle if it is stale
    const listAll = cli(["bin/guesthouse.js", "list"], env, CLI_RUNS);
    const listOne = cli(["bin/guesthouse.js", "list", "-q", "guest-0001"], env, CLI_RUNS);
    const floor = cli(["-e", `fetch(${JSON.stringify(`${api}?q=guest-0001`)}, { headers: ${JSON.stringify(auth)} }).then((r) => r.text()).then((t) => process.stdout.write(t))`], env, CLI_RUNS);
    console.log(`end to end, start-up included (${CLI_RUNS} runs)   median`);
    console.log(`guesthouse list (all ${GUESTS})               ${ms(median(listAll)).padStart(8)}`);
    console.log(`guesthouse list -q guest-0001            ${ms(median(listOne)).padStart(8)}`);
    console.log(`node -e fetch (one page, the floor)      ${ms(median(floor)).padStart(8)}`);
    console.log(`ratio CLI / bare node: ${(median(listOne) / median(floor)).toFixed(2)}×`);

    console.log("");
    console.log(`${verdict(median(apiTimes) <= API_MEDIAN_MS)}  API list median ${ms(median(apiTimes))} ≤ ${API_MEDIAN_MS} ms`);
    console.log(`${verdict(apiLoad.p99 <= LOAD_P99_MS && apiLoad.rate >= RATE * 0.95 && apiLoad.errors + apiLoad.non2xx === 0)}  API at ${RATE}/s for ${LOAD_SECONDS} s: p99 ${ms(apiLoad.p99)} ≤ ${LOAD_P99_MS} ms, ${apiLoad.rate.toFixed(0)}/s kept, no errors`);
    console.log(`${verdict(median(listAll) <= CLI_MS)}  guesthouse list (all ${GUESTS}) median ${ms(median(listAll))} ≤ ${CLI_MS} ms`);
    return 0;
  } finally {
    if (stack) {
      for (const id of started) await stack.agent.client.forceOff(id).catch(() => {});
      await stack.cleanup().catch((err) => console.error("api: cleanup failed:", err));
    }
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
