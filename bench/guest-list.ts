/**
 * The guest list page (`GET /`, full server render) with 1,000 guests in the
 * database, 3 of them running under the real agent, against the raw database read
 * of the same rows (the page's own findMany), in the same run. Also counts the agent
 * requests one render makes, with 3 guests and with 1,000, to show that the list
 * path makes no per-guest agent call.
 *
 *   node --import tsx bench/guest-list.ts
 *   BENCH_GUESTS=2000 BENCH_REQUESTS=50 node --import tsx bench/guest-list.ts
 *
 * Needs a built app (.next; `NODE_ENV=production npx next build`) and the demo ISO
 * (`bash scripts/fixtures.sh`). Targets: page median ≤ 150 ms and ≤ 2 × raw read
 * median; agent requests per render do not grow with the guest count. Prints PASS or
 * MISS per target and exits 0 either way (1 only if the benchmark could not run).
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { guestScope } from "../server/auth/policy";
import { createSession, SESSION_COOKIE, type SessionUser } from "../server/auth/sessions";
import type { PrismaClient } from "../server/db/client";
import type { GuestSpec } from "../server/domain/types";
import { DEMO_ISO } from "../tests/helpers/agent";
import { startTestStack, type TestStack } from "../tests/helpers/web";
import { cpuTimeMs, machineLine, median, ms, percentile, sleep, verdict } from "./stats";

const GUESTS = Number(process.env.BENCH_GUESTS ?? 1000);
const RUNNING = 3;
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 30);
const PAGE_LIMIT_MS = 150;
const RAW_FACTOR = 2;

const newId = () => randomBytes(12).toString("hex"); // 24 lowercase hex: a valid guest and volume id
const macOf = (i: number) => `52:54:00:${[(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;
const nameOf = (i: number) => `guest-${String(i).padStart(4, "0")}`;

/** The guest list page's query, with the `select` copied from app/page.tsx. */
function pageQuery(db: PrismaClient, user: SessionUser) {
  return db.guest.findMany({
    where: guestScope(user),
    orderBy: { name: "asc" },
    select: {
      id: true,
      name: true,
      vcpus: true,
      memoryMiB: true,
      host: { select: { id: true, name: true, endpoint: true } },
      owner: { select: { username: true } },
      disks: { select: { sizeGiB: true, bus: true }, orderBy: { position: "asc" } },
      cdroms: { select: { iso: { select: { name: true } } } },
      nics: { select: { mac: true, model: true } },
    },
  });
}

interface Rows {
  guests: Array<{ id: string; name: string; vcpus: number; memoryMiB: number; boot: string; ownerId: string; teamId: string; hostId: string }>;
  disks: Array<{ volume: string; format: string; bus: string; sizeGiB: number; position: number; guestId: string; ownerId: string; teamId: string; hostId: string }>;
  cdroms: Array<{ guestId: string; isoId: string; position: number }>;
  nics: Array<{ mac: string; model: string; position: number; guestId: string; networkId: string }>;
}

/** Rows shaped like app/actions/create-guest.ts makes them: one disk, one CD-ROM, one NIC per guest. */
function makeRows(indexes: number[], ctx: { ownerId: string; teamId: string; hostId: string; isoId: string; networkId: string }, diskGiB: number): Rows {
  const rows: Rows = { guests: [], disks: [], cdroms: [], nics: [] };
  for (const i of indexes) {
    const id = newId();
    rows.guests.push({ id, name: nameOf(i), vcpus: 1 + (i % 4), memoryMiB: 256 * (1 + (i % 8)), boot: "cdrom", ownerId: ctx.ownerId, teamId: ctx.teamId, hostId: ctx.hostId });
    rows.disks.push({ volume: newId(), format: "qcow2", bus: i % 5 === 0 ? "ide" : "virtio", sizeGiB: diskGiB, position: 0, guestId: id, ownerId: ctx.ownerId, teamId: ctx.teamId, hostId: ctx.hostId });
    rows.cdroms.push({ guestId: id, isoId: ctx.isoId, position: 0 });
    rows.nics.push({ mac: macOf(i), model: "virtio", position: 0, guestId: id, networkId: ctx.networkId });
  }
  return rows;
}

async function insertRows(db: PrismaClient, rows: Rows): Promise<void> {
  await db.$transaction([
    db.guest.createMany({ data: rows.guests }),
    db.disk.createMany({ data: rows.disks }),
    db.cdrom.createMany({ data: rows.cdroms }),
    db.nic.createMany({ data: rows.nics }),
  ]);
}

interface PageResult {
  ms: number;
  bytes: number;
  rows: number;
  running: number;
}

async function getPage(url: string, cookie: string): Promise<PageResult> {
  const t0 = performance.now();
  const res = await fetch(url, { headers: { cookie }, redirect: "manual" });
  const html = await res.text();
  const took = performance.now() - t0;
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${html.slice(0, 300)}`);
  return {
    ms: took,
    bytes: Buffer.byteLength(html),
    rows: html.split('data-testid="guest-row"').length - 1,
    running: html.split('data-state="running"').length - 1,
  };
}

/** Agent request lines ("agent: GET /v1/guests 200 1ms") logged while fn runs. */
async function agentRequestsDuring(stack: TestStack, fn: () => Promise<unknown>): Promise<string[]> {
  await sleep(300); // anything already in flight lands before we start counting
  const before = stack.agent.output().length;
  await fn();
  await sleep(300); // the agent logs after replying; give its stdout a moment
  return stack.agent
    .output()
    .slice(before)
    .split("\n")
    .filter((l) => /^agent: (GET|POST|PUT|DELETE) /.test(l));
}

/** Waits until the guests' QEMUs have finished booting (each below 30% of a CPU over 2 s). */
async function waitIdle(pids: number[], timeoutMs = 180_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let usage: number[] = [];
  while (Date.now() < deadline) {
    const a = pids.map((p) => cpuTimeMs(p) ?? 0);
    await sleep(2000);
    const b = pids.map((p) => cpuTimeMs(p) ?? 0);
    usage = b.map((v, i) => (v - a[i]!) / 2000);
    if (usage.every((u) => u < 0.3)) return usage;
  }
  console.log(`note: the guests still use ${usage.map((u) => `${(u * 100).toFixed(0)}%`).join(", ")} of a CPU after ${timeoutMs / 1000} s`);
  return usage;
}

async function main(): Promise<number> {
  if (!fs.existsSync(DEMO_ISO)) {
    console.error(`${DEMO_ISO} is missing: run bash scripts/fixtures.sh first.`);
    return 1;
  }
  if (!fs.existsSync(".next/BUILD_ID")) {
    console.error(".next is missing: run NODE_ENV=production npx next build first.");
    return 1;
  }
  console.log(`guest-list: ${GUESTS} guests (${RUNNING} running), ${REQUESTS} requests after ${WARMUP} warm-ups`);
  console.log(`machine: ${machineLine()}`);
  console.log(`app build: .next/BUILD_ID ${fs.readFileSync(".next/BUILD_ID", "utf8").trim()} (${fs.statSync(".next/BUILD_ID").mtime.toISOString()})`);

  // The agent logs one line per request; startTestStack passes our environment on.
  process.env.GUESTHOUSE_AGENT_LOG = "1";
  let stack: TestStack | null = null;
  const onSignal = () => {
    console.error("guest-list: interrupted, cleaning up");
    void (stack?.cleanup() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    const t0 = performance.now();
    stack = await startTestStack();
    console.log(`stack up in ${ms(performance.now() - t0)} at ${stack.baseUrl}`);
    const db = stack.database.db;
    const agent = stack.agent.client;

    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const adminUser: SessionUser = { id: admin.id, username: admin.username, role: "admin", teamId: admin.teamId };
    const host = await db.host.findUniqueOrThrow({ where: { name: "local" } });
    const info = await agent.host();
    const demo = info.isos.find((i) => i.name === "demo.iso");
    if (!demo) throw new Error(`the agent lists no demo.iso: ${JSON.stringify(info.isos)}`);
    const iso = await db.isoImage.create({ data: { hostId: host.id, name: demo.name, sizeBytes: BigInt(demo.sizeBytes) } });
    const network = await db.network.create({ data: { name: "user", mode: "user", ownerId: admin.id, teamId: admin.teamId, hostId: host.id } });
    const ctx = { ownerId: admin.id, teamId: admin.teamId, hostId: host.id, isoId: iso.id, networkId: network.id };

    // The running guests: spread over the list, with real (sparse, 1 GiB) volumes made by the agent.
    const runningIdx = [1, Math.floor(GUESTS / 2), GUESTS - 2];
    const runningRows = makeRows(runningIdx, ctx, 1);
    await insertRows(db, runningRows);
    const pids: number[] = [];
    for (const [k, g] of runningRows.guests.entries()) {
      const disk = runningRows.disks[k]!;
      await agent.createVolume(disk.volume, "qcow2", disk.sizeGiB);
      const spec: GuestSpec = {
        id: g.id,
        name: g.name,
        vcpus: 1,
        memoryMiB: 256,
        boot: "cdrom",
        disks: [{ volume: disk.volume, format: "qcow2", bus: disk.bus as "virtio" | "ide" }],
        cdroms: [{ iso: "demo.iso" }],
        nics: [{ mac: runningRows.nics[k]!.mac, model: "virtio", mode: "user" }],
      };
      // The rows say vCPUs/memory of the pattern; keep them honest for the running ones.
      await db.guest.update({ where: { id: g.id }, data: { vcpus: 1, memoryMiB: 256 } });
      const t = performance.now();
      const status = await agent.start(spec);
      if (status.state !== "running" || status.pid === null) throw new Error(`guest ${g.name} did not start: ${JSON.stringify(status)}`);
      pids.push(status.pid);
      console.log(`started ${g.name} (pid ${status.pid}) in ${ms(performance.now() - t)}`);
    }
    const idle = await waitIdle(pids);
    console.log(`guests booted; CPU use now ${idle.map((u) => `${(u * 100).toFixed(0)}%`).join(", ")} of a core each`);

    const { secret } = await createSession(db, admin.id);
    const cookie = `${SESSION_COOKIE}=${secret}`;
    const url = `${stack.baseUrl}/`;

    // Agent requests per render with only the running guests in the database.
    for (let i = 0; i < 3; i++) await getPage(url, cookie); // first renders load code
    const smallCalls = await agentRequestsDuring(stack, () => getPage(url, cookie));
    const smallTimes: number[] = [];
    for (let i = 0; i < 10; i++) smallTimes.push((await getPage(url, cookie)).ms);
    console.log(`with ${RUNNING} guests: page median ${ms(median(smallTimes))}, ${smallCalls.length} agent request(s) per render`);

    // The rest, in one transaction.
    const rest = [...Array(GUESTS).keys()].filter((i) => !runningIdx.includes(i));
    const tInsert = performance.now();
    await insertRows(db, makeRows(rest, ctx, 20));
    console.log(`inserted ${rest.length} more guests (with a disk, a CD-ROM and a NIC each) in ${ms(performance.now() - tInsert)}`);
    const count = await db.guest.count();
    if (count !== GUESTS) throw new Error(`expected ${GUESTS} guests, the database has ${count}`);

    // Warm up both sides, then alternate: one page render, one raw read.
    for (let i = 0; i < WARMUP; i++) {
      await getPage(url, cookie);
      await pageQuery(db, adminUser);
    }
    const bigCalls = await agentRequestsDuring(stack, () => getPage(url, cookie));

    const cpuBefore = pids.map((p) => cpuTimeMs(p) ?? 0);
    const tMeasure = performance.now();
    const pageTimes: number[] = [];
    const rawTimes: number[] = [];
    let last: PageResult | null = null;
    for (let i = 0; i < REQUESTS; i++) {
      last = await getPage(url, cookie);
      pageTimes.push(last.ms);
      const t = performance.now();
      const rows = await pageQuery(db, adminUser);
      rawTimes.push(performance.now() - t);
      if (rows.length !== GUESTS) throw new Error(`the raw read returned ${rows.length} rows`);
    }
    const window = performance.now() - tMeasure;
    const guestCpu = pids.map((p, i) => ((cpuTimeMs(p) ?? 0) - cpuBefore[i]!) / window);

    // Checks that the page really showed what we think it measured.
    const shown = last!;
    if (shown.rows !== GUESTS) throw new Error(`the page shows ${shown.rows} guest rows, expected ${GUESTS}`);
    if (shown.running !== RUNNING) throw new Error(`the page shows ${shown.running} running guests, expected ${RUNNING}`);

    const pageMedian = median(pageTimes);
    const rawMedian = median(rawTimes);
    const okAbs = pageMedian <= PAGE_LIMIT_MS;
    const okRel = pageMedian <= RAW_FACTOR * rawMedian;
    const calls = (lines: string[]) => lines.map((l) => l.replace(/^agent: /, "")).join("; ") || "none";
    const okCalls = bigCalls.length <= smallCalls.length && bigCalls.length <= 2;

    console.log("");
    console.log(`page: ${(shown.bytes / 1024).toFixed(0)} KiB of HTML, ${shown.rows} guest rows, ${shown.running} running`);
    console.log(`guests' CPU use while measuring: ${guestCpu.map((u) => `${(u * 100).toFixed(0)}%`).join(", ")} of a core`);
    console.log("result                        median       p90       min       max");
    const row = (name: string, v: number[]) =>
      console.log(
        `${name.padEnd(26)} ${ms(median(v)).padStart(9)} ${ms(percentile(v, 90)).padStart(9)} ${ms(Math.min(...v)).padStart(9)} ${ms(Math.max(...v)).padStart(9)}`,
      );
    row(`GET / (${GUESTS} guests)`, pageTimes);
    row(`raw findMany (${GUESTS} rows)`, rawTimes);
    row(`GET / (${RUNNING} guests)`, smallTimes);
    console.log("");
    console.log(`ratio median(page)/median(raw read) = ${(pageMedian / rawMedian).toFixed(2)}`);
    console.log(`target: page median ${ms(pageMedian)} <= ${PAGE_LIMIT_MS} ms: ${verdict(okAbs)}`);
    console.log(`target: page median ${ms(pageMedian)} <= ${RAW_FACTOR} x raw median ${ms(rawMedian)} = ${ms(RAW_FACTOR * rawMedian)}: ${verdict(okRel)}`);
    console.log(`agent requests in one render with ${RUNNING} guests: ${smallCalls.length} (${calls(smallCalls)})`);
    console.log(`agent requests in one render with ${GUESTS} guests: ${bigCalls.length} (${calls(bigCalls)})`);
    console.log(`target: no per-guest agent call on the list path (<= 2 and not growing with the guest count): ${verdict(okCalls)}`);
    console.log(`machine after: ${machineLine()}`);
    return 0;
  } catch (err) {
    console.error("guest-list: the benchmark failed:", err);
    if (stack) console.error(`web output:\n${stack.output().slice(-3000)}\nagent output:\n${stack.agent.output().slice(-3000)}`);
    return 1;
  } finally {
    if (stack) await stack.cleanup().catch((err) => console.error("guest-list: cleanup failed:", err));
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
