/**
 * The guest list page (`GET /`, full server render) with 1,000 guests in the
 * database, 3 of them running under the real agent, against the raw database read
 * of the same rows (the page's own findMany), in the same run. Also counts the agent
 * requests one render makes, with 3 guests and with 1,000, to show that the list
 * path makes no per-guest agent call.
 *
 *   node --import tsx bench/guest-list.ts
 *   BENCH_GUESTS=2000 BENCH_REQUESTS=50 node --import tsx bench/guest-list.ts
 *   BENCH_PROFILE=/tmp/prof node --import tsx bench/guest-list.ts   (CPU profile of the web
 *     server during the measured requests, summarized; slows the numbers down a little)
 *
 * Diagnostics (no targets): the page uncompressed, the rows in one SQL statement, and the
 * floor under any page: Next's not-found page for the same user (same root layout and
 * session read) and a 404 Next answers without rendering.
 *
 * Needs a built app (.next; `NODE_ENV=production npx next build`) and the demo ISO
 * (`bash scripts/fixtures.sh`). Targets: page median ≤ 150 ms and ≤ 2 × raw read
 * median; agent requests per render do not grow with the guest count. Prints PASS or
 * MISS per target and exits 0 either way (1 only if the benchmark could not run).
 */
import fs from "node:fs";
import Database from "better-sqlite3";
import path from "node:path";
import { createSession, SESSION_COOKIE, userForSession, type SessionUser } from "../server/auth/sessions";
import type { PrismaClient } from "../server/db/client";
import { GUEST_PAGE_SIZE, guestListQuery } from "../server/web/guest-list";
import { guestInclude, specOf } from "../server/web/guests";
import { startTestStack, type TestStack } from "../tests/helpers/web";
import { guestTemplate, insertRows, makeRows } from "./seed";
import { printSummary, readProfile, summarize } from "./profile-summary";
import { cpuTimeMs, machineLine, median, ms, percentile, sleep, verdict, missingPrerequisite, waitIdle } from "./stats";

const GUESTS = Number(process.env.BENCH_GUESTS ?? 1000);
const RUNNING = 3;
/** The list is paginated: its first page shows this many rows. */
const SHOWN = Math.min(GUESTS, GUEST_PAGE_SIZE);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 30);
const PAGE_LIMIT_MS = 150;
const RAW_FACTOR = 2;
/** Guest counts looked at on the way to GUESTS (medians of 10 requests each). */
const STAGES = (process.env.BENCH_STAGES ?? "100,250,500").split(",").filter(Boolean).map(Number);
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : null;

/** The guest list page's own query (its first page), as the page runs it. */
function pageQuery(db: PrismaClient, user: SessionUser) {
  return guestListQuery(db, user, 1);
}

interface PageResult {
  ms: number;
  bytes: number;
  /** Bytes of the inline React Server Components payload (the self.__next_f.push scripts). */
  flightBytes: number;
  encoding: string;
  rows: number;
  running: number;
}

/** One full page load: request, server render, the whole body read (and decompressed, like a browser). */
async function getPage(url: string, cookie: string, acceptEncoding?: string, expectStatus = 200): Promise<PageResult> {
  const headers: Record<string, string> = { cookie };
  if (acceptEncoding) headers["accept-encoding"] = acceptEncoding;
  const t0 = performance.now();
  const res = await fetch(url, { headers, redirect: "manual" });
  const html = await res.text();
  const took = performance.now() - t0;
  if (res.status !== expectStatus) throw new Error(`GET ${url} answered ${res.status}: ${html.slice(0, 300)}`);
  let flightBytes = 0;
  for (const m of html.matchAll(/<script>self\.__next_f\.push\([\s\S]*?<\/script>/g)) flightBytes += Buffer.byteLength(m[0]);
  return {
    ms: took,
    bytes: Buffer.byteLength(html),
    flightBytes,
    encoding: res.headers.get("content-encoding") ?? "uncompressed",
    rows: html.split('data-testid="guest-row"').length - 1,
    running: html.split('data-state="running"').length - 1,
  };
}

/**
 * Diagnostic: the same rows as the page's findMany, in one SQL statement straight on
 * better-sqlite3 (times in ms). On the schema as it is (no index on the guestId columns)
 * the correlated subqueries scan; the temporary indexes here show what they would cost
 * with one, without touching the database the web uses (a copy is read).
 */
async function oneStatementRead(url: string, times: number, expectRows: number): Promise<number[]> {
  const file = url.replace(/^file:/, "");
  const copy = `${file}.bench-copy`;
  const source = new Database(file, { readonly: true });
  try {
    await source.backup(copy);
  } finally {
    source.close();
  }
  const sqlite = new Database(copy);
  try {
    sqlite.exec("CREATE INDEX bench_disk ON Disk(guestId); CREATE INDEX bench_cdrom ON Cdrom(guestId); CREATE INDEX bench_nic ON Nic(guestId);");
    const statement = sqlite.prepare(`
      SELECT g.id, g.name, g.vcpus, g.memoryMiB, h.id AS hostId, h.name AS hostName, h.endpoint, u.username,
        (SELECT json_group_array(json_object('sizeBytes', d.sizeBytes, 'bus', d.bus))
           FROM (SELECT * FROM Disk d WHERE d.guestId = g.id ORDER BY d.position) d) AS disks,
        (SELECT json_group_array(i.name) FROM Cdrom c JOIN IsoImage i ON i.id = c.isoId WHERE c.guestId = g.id) AS cdroms,
        (SELECT json_group_array(json_object('mac', n.mac, 'model', n.model)) FROM Nic n WHERE n.guestId = g.id) AS nics
      FROM Guest g JOIN Host h ON h.id = g.hostId JOIN User u ON u.id = g.ownerId
      ORDER BY g.name`);
    const result: number[] = [];
    for (let i = 0; i < times; i++) {
      const t = performance.now();
      const rows = statement.all() as Array<Record<string, string>>;
      if (rows.length !== expectRows) throw new Error(`one SQL statement read ${rows.length} rows, expected ${expectRows}`);
      for (const r of rows) {
        r.disks = JSON.parse(r.disks!);
        r.cdroms = JSON.parse(r.cdroms!);
        r.nics = JSON.parse(r.nics!);
      }
      result.push(performance.now() - t);
    }
    return result;
  } finally {
    sqlite.close();
    fs.rmSync(copy, { force: true });
  }
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

async function main(): Promise<number> {
  const missing = missingPrerequisite({ build: true });
  if (missing) {
    console.error(missing);
    return 1;
  }
  console.log(`guest-list: ${GUESTS} guests (${RUNNING} running), ${REQUESTS} requests after ${WARMUP} warm-ups`);
  console.log(`machine: ${machineLine()}`);
  console.log(`app build: .next/BUILD_ID ${fs.readFileSync(".next/BUILD_ID", "utf8").trim()} (${fs.statSync(".next/BUILD_ID").mtime.toISOString()})`);

  // The agent logs one line per request; startTestStack passes our environment on.
  process.env.GUESTHOUSE_AGENT_LOG = "1";
  if (PROFILE_DIR) {
    fs.mkdirSync(PROFILE_DIR, { recursive: true });
    // Node refuses --cpu-prof in NODE_OPTIONS; a preloaded module runs the profiler instead.
    process.env.BENCH_PROFILE_DIR = PROFILE_DIR;
    process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import ${path.resolve("bench/cpu-profile-preload.mjs")}`.trim();
    console.log(`profiling the web server into ${PROFILE_DIR}`);
  }
  let window: [number, number] | null = null;
  const started: string[] = [];
  let stack: TestStack | null = null;
  const onSignal = () => {
    console.error("guest-list: interrupted, cleaning up");
    const s = stack;
    void (async () => {
      if (s) {
        for (const id of started) await s.agent.client.forceOff(id).catch(() => {});
        await s.cleanup();
      }
    })().finally(() => process.exit(130));
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
    const adminUser: SessionUser = (await userForSession(db, (await createSession(db, admin.id)).secret))!;
    const host = await db.host.findUniqueOrThrow({ where: { name: "local" } });
    const info = await agent.host();
    const demo = info.isos.find((i) => i.name === "demo.iso");
    if (!demo) throw new Error(`the agent lists no demo.iso: ${JSON.stringify(info.isos)}`);
    const iso = await db.isoImage.create({ data: { hostId: host.id, name: demo.name, sizeBytes: BigInt(demo.sizeBytes) } });
    const network = await db.network.create({ data: { name: "user", mode: "user", ownerId: admin.id, teamId: admin.teamId, hostId: host.id } });
    const template = await guestTemplate();
    const ctx = { ownerId: admin.id, teamId: admin.teamId, hostId: host.id, isoId: iso.id, networkId: network.id };

    // The running guests: spread over the list, with real (sparse, 1 GiB) volumes made by the agent.
    const runningIdx = [1, Math.floor(GUESTS / 2), GUESTS - 2];
    const runningRows = makeRows(template, runningIdx, ctx, 1);
    await insertRows(db, runningRows);
    const pids: number[] = [];
    for (const [k, g] of runningRows.guests.entries()) {
      const disk = runningRows.disks[k]!;
      await agent.createImage({ pool: "default", file: disk.file, format: "qcow2", bytes: Number(disk.sizeBytes), volume: disk.volume });
      // 1 vCPU and 256 MiB for the running ones; the spec is what the web would send.
      await db.guest.update({ where: { id: g.id }, data: { vcpus: 1, memoryMiB: 256 } });
      const spec = specOf(await db.guest.findUniqueOrThrow({ where: { id: g.id }, include: guestInclude }));
      const t = performance.now();
      const status = await agent.start(spec);
      if (status.state !== "running" || status.pid === null) throw new Error(`guest ${g.name} did not start: ${JSON.stringify(status)}`);
      pids.push(status.pid);
      started.push(g.id);
      console.log(`started ${g.name} (pid ${status.pid}) in ${ms(performance.now() - t)}`);
    }
    const tBoot = performance.now();
    const idle = await waitIdle(pids);
    console.log(`guests booted (idle after ${((performance.now() - tBoot) / 1000).toFixed(0)} s); CPU use now ${idle.map((u) => `${(u * 100).toFixed(0)}%`).join(", ")} of a core each`);

    const { secret } = await createSession(db, admin.id);
    const cookie = `${SESSION_COOKIE}=${secret}`;
    const url = `${stack.baseUrl}/`;

    // Agent requests per render with only the running guests in the database.
    for (let i = 0; i < 3; i++) await getPage(url, cookie); // the first renders load code
    const smallCalls = await agentRequestsDuring(stack, () => getPage(url, cookie));
    const smallTimes: number[] = [];
    for (let i = 0; i < 10; i++) smallTimes.push((await getPage(url, cookie)).ms);
    console.log(`with ${RUNNING} guests: page median ${ms(median(smallTimes))}, ${smallCalls.length} agent request(s) per render`);

    // The rest in steps (one transaction each), with a short look at each size on the way.
    const rest = [...Array(GUESTS).keys()].filter((i) => !runningIdx.includes(i));
    let inserted = 0;
    const scaling: Array<{ guests: number; page: number; raw: number }> = [{ guests: RUNNING, page: median(smallTimes), raw: Number.NaN }];
    for (const total of [...STAGES.filter((n) => n > RUNNING && n < GUESTS), GUESTS]) {
      const batch = rest.slice(inserted, total - RUNNING);
      const tInsert = performance.now();
      await insertRows(db, makeRows(template, batch, ctx, 20));
      inserted += batch.length;
      console.log(`inserted ${batch.length} more guests (a disk, a CD-ROM and a NIC each) in ${ms(performance.now() - tInsert)}: ${total} in all`);
      if (total === GUESTS) break;
      const page: number[] = [];
      const raw: number[] = [];
      for (let i = 0; i < 12; i++) {
        const p = await getPage(url, cookie);
        const t = performance.now();
        await pageQuery(db, adminUser);
        if (i >= 2) {
          page.push(p.ms);
          raw.push(performance.now() - t);
        }
      }
      scaling.push({ guests: total, page: median(page), raw: median(raw) });
    }
    const count = await db.guest.count();
    if (count !== GUESTS) throw new Error(`expected ${GUESTS} guests, the database has ${count}`);

    // Warm up both sides, then alternate: one page render, one raw read.
    for (let i = 0; i < WARMUP; i++) {
      await getPage(url, cookie);
      await pageQuery(db, adminUser);
    }
    const bigCalls = await agentRequestsDuring(stack, () => getPage(url, cookie));

    const cpuBefore = pids.map((p) => cpuTimeMs(p) ?? 0);
    const windowFrom = Number(process.hrtime.bigint() / 1000n);
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
      if (rows.length !== SHOWN) throw new Error(`the raw read returned ${rows.length} rows, expected ${SHOWN}`);
    }
    const measured = performance.now() - tMeasure;
    window = [windowFrom, Number(process.hrtime.bigint() / 1000n)];
    const guestCpu = pids.map((p, i) => ((cpuTimeMs(p) ?? 0) - cpuBefore[i]!) / measured);

    // Checks that the page really showed what we think it measured.
    const shown = last!;
    if (shown.rows !== SHOWN) throw new Error(`the page shows ${shown.rows} guest rows, expected ${SHOWN} (its first page)`);
    const runningShown = runningIdx.filter((i) => i < SHOWN).length; // names sort as their index
    if (shown.running !== runningShown) throw new Error(`the page shows ${shown.running} running guests, expected ${runningShown}`);
    scaling.push({ guests: GUESTS, page: median(pageTimes), raw: median(rawTimes) });

    // Diagnostics (not targets): the page without compression, and the same rows in one SQL statement.
    const identity: number[] = [];
    for (let i = 0; i < 12; i++) {
      const p = await getPage(url, cookie, "identity");
      if (i >= 2) identity.push(p.ms);
    }
    const oneSql = (await oneStatementRead(stack.database.url, 12, GUESTS)).slice(2);
    // The floor under any page: Next's not-found page for the same user (the same root
    // layout and session read, no list), and an answer Next gives without rendering.
    const floorPage: number[] = [];
    const floorBare: number[] = [];
    for (let i = 0; i < 22; i++) {
      const p = await getPage(`${stack.baseUrl}/no-such-page`, cookie, undefined, 404);
      const b = await getPage(`${stack.baseUrl}/_next/static/no-such-file.js`, cookie, undefined, 404);
      if (i >= 2) {
        floorPage.push(p.ms);
        floorBare.push(b.ms);
      }
    }

    const pageMedian = median(pageTimes);
    const rawMedian = median(rawTimes);
    const okAbs = pageMedian <= PAGE_LIMIT_MS;
    const okRel = pageMedian <= RAW_FACTOR * rawMedian;
    const calls = (lines: string[]) => lines.map((l) => l.replace(/^agent: /, "")).join("; ") || "none";
    const okCalls = bigCalls.length <= smallCalls.length && bigCalls.length <= 2;

    console.log("");
    console.log(
      `page: ${(shown.bytes / 1024).toFixed(0)} KiB of HTML (${(shown.flightBytes / 1024).toFixed(0)} KiB of it the inline RSC payload), ` +
        `sent ${shown.encoding}; ${shown.rows} guest rows, ${shown.running} running`,
    );
    console.log(`guests' CPU use while measuring: ${guestCpu.map((u) => `${(u * 100).toFixed(0)}%`).join(", ")} of a core`);
    console.log("result                                  median       p90       min       max");
    const row = (name: string, v: number[]) =>
      console.log(
        `${name.padEnd(36)} ${ms(median(v)).padStart(9)} ${ms(percentile(v, 90)).padStart(9)} ${ms(Math.min(...v)).padStart(9)} ${ms(Math.max(...v)).padStart(9)}`,
      );
    row(`GET / (${GUESTS} guests)`, pageTimes);
    row(`raw findMany (${GUESTS} rows)`, rawTimes);
    row(`GET / (${RUNNING} guests)`, smallTimes);
    console.log("diagnostics:");
    row(`GET / uncompressed (${GUESTS} guests)`, identity);
    row(`one SQL statement (${GUESTS} rows)`, oneSql);
    row("GET /no-such-page (not-found page)", floorPage);
    row("GET /_next/static/… (404, no render)", floorBare);
    console.log("scaling (medians): " + scaling.map((s) => `${s.guests} guests: page ${ms(s.page)}${Number.isNaN(s.raw) ? "" : `, raw ${ms(s.raw)}`}`).join("; "));
    const slope = (pageMedian - median(smallTimes)) / (GUESTS - RUNNING);
    console.log(`page cost per guest row: ${(slope * 1000).toFixed(0)} µs (raw read: ${((rawMedian / GUESTS) * 1000).toFixed(0)} µs)`);
    console.log("");
    console.log(`ratio median(page)/median(raw read) = ${(pageMedian / rawMedian).toFixed(2)}`);
    console.log(
      `floor: the cheapest page this server renders (not found, same layout) takes ${ms(median(floorPage))} = ${(median(floorPage) / rawMedian).toFixed(2)} × the raw read; ` +
        `the list page adds ${ms(pageMedian - median(floorPage))} to it, of which the read itself ${ms(rawMedian)}`,
    );
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
    if (stack) {
      // Force off through the agent first: QEMUs orphaned by the agent's exit linger as zombies here.
      for (const id of started) await stack.agent.client.forceOff(id).catch((err) => console.error(`guest-list: force off ${id}:`, err));
      await stack.cleanup().catch((err) => console.error("guest-list: cleanup failed:", err));
    }
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (PROFILE_DIR && window) reportProfile(PROFILE_DIR, window);
  }
}

/** The web server's profile (the one with Next.js frames), over the measured requests only. */
function reportProfile(dir: string, [from, to]: [number, number]): void {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => path.join(dir, f));
  const web = files
    .map((file) => ({ file, profile: readProfile(file) }))
    .filter(({ profile }) => profile.nodes.some((n) => n.callFrame.url.includes("next/dist")) && profile.endTime >= to);
  if (web.length !== 1) {
    console.log(`profile: expected one web server profile covering the run in ${dir}, found ${web.length}`);
    return;
  }
  console.log("");
  console.log(`profile of the web server during the ${REQUESTS} measured page requests (${path.basename(web[0]!.file)}), per request:`);
  printSummary(summarize(web[0]!.profile, from, to), REQUESTS);
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
