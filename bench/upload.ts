/**
 * A 2 GiB upload through the web server (`PUT /upload/default/<file>` with a logged-in
 * session, on a full stack: the real web server in front of the real agent) against
 * `cp` of the same file into the same storage folder, in the same run. Also samples
 * the web server's resident memory every 50 ms during each upload.
 *
 *   node --import tsx bench/upload.ts
 *   BENCH_SIZE_MIB=512 BENCH_ROUNDS=5 node --import tsx bench/upload.ts
 *
 * Fair to both sides: the source file is generated once on the same file system as the
 * storage folder (not tmpfs) and is in the page cache for both; neither side fsyncs
 * (the agent does not, and cp does not); `sync` runs before every measured copy so one
 * round's writeback does not slow the next; cp runs with --reflink=never (a reflink
 * would copy nothing). The upload is streamed from disk by node:http, never held in
 * memory. Targets: upload throughput ≥ 0.8 × cp's (medians), and the web server's RSS
 * growing by ≤ 64 MiB during an upload. Prints PASS or MISS per target and exits 0
 * either way (1 only if the benchmark could not run).
 *
 * Needs a built app (.next; `NODE_ENV=production npx next build`) and the demo ISO
 * (`bash scripts/fixtures.sh`), like every full-stack benchmark.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { createSession, SESSION_COOKIE } from "../server/auth/sessions";
import { formatBytes } from "../server/domain/format";
import { DEMO_ISO } from "../tests/helpers/agent";
import { startTestStack, type TestStack } from "../tests/helpers/web";
import { machineLine, median, sleep, verdict } from "./stats";

const MiB = 2 ** 20;
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 2048) * MiB;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RATIO_TARGET = 0.8;
const RSS_TARGET_MIB = 64;
const SAMPLE_MS = 50;
/** Bytes the client reads from the source file at a time (a browser sends the file in similar slices). */
const CLIENT_CHUNK = 1024 * 1024;

interface Sample {
  ms: number;
  /** `sync` right after, until the data is on disk. */
  syncMs: number;
  /** The web server's RSS growth over its value just before the upload (MiB), at its peak. */
  rssGrowthMiB?: number;
  rssBeforeMiB?: number;
  /** CPU time used meanwhile, ms. */
  cpu?: { web: number; agent: number; client: number; webSys: number; agentSys: number; clientSys: number };
}

function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** User and system CPU time of a process so far (ms), from /proc; zeros if it is gone. */
function cpuSplitMs(pid: number): { user: number; system: number } {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: (Number(fields[11]) * 1000) / 100, system: (Number(fields[12]) * 1000) / 100 }; // USER_HZ 100
  } catch {
    return { user: 0, system: 0 };
  }
}

/** The web server: our child running server/web/main.ts (startTestStack does not expose it). */
function webPid(): number {
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== process.pid) continue;
      if (fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("server/web/main.ts")) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error("could not find the web server's process");
}

/** The mount's file system type for a path (the longest mount point that contains it). */
function fsTypeOf(target: string): string {
  let best = { point: "", type: "?" };
  for (const line of fs.readFileSync("/proc/mounts", "utf8").split("\n")) {
    const [, point, type] = line.split(" ");
    if (!point || !type) continue;
    const inside = target === point || target.startsWith(point.endsWith("/") ? point : `${point}/`);
    if (inside && point.length > best.point.length) best = { point, type };
  }
  return best.type;
}

/** SIZE bytes of random-looking data (a 16 MiB random block, each copy stamped with its index), and its SHA-256. */
async function generate(file: string): Promise<string> {
  const block = randomBytes(16 * MiB);
  const hash = createHash("sha256");
  const out = fs.createWriteStream(file);
  for (let written = 0, i = 0; written < SIZE; i++) {
    const chunk = Buffer.from(block.subarray(0, Math.min(block.length, SIZE - written)));
    chunk.writeUInt32LE(i, 0);
    hash.update(chunk);
    written += chunk.length;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest("hex");
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err}`))));
  });
}

async function timeCp(source: string, dest: string): Promise<Sample> {
  await run("sync", []);
  const t = performance.now();
  await run("cp", ["--reflink=never", source, dest]);
  const took = performance.now() - t;
  await run("sync", []);
  const syncMs = performance.now() - t - took;
  if (fs.statSync(dest).size !== SIZE) throw new Error("cp made a file of the wrong size");
  return { ms: took, syncMs };
}

async function timeUpload(stack: TestStack, cookie: string, source: string, file: string, expectSha: string, web: number): Promise<Sample & { diskId: string }> {
  await run("sync", []);
  await sleep(200); // let the web's memory settle after the sync
  const agentPid = stack.agent.process.pid!;
  const rssBefore = rssMiB(web) ?? 0;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    const now = rssMiB(web);
    if (now !== null && now > rssPeak) rssPeak = now;
  }, SAMPLE_MS);
  const cpu0 = { web: cpuSplitMs(web), agent: cpuSplitMs(agentPid), client: process.cpuUsage() };
  const t = performance.now();
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request(`${stack.baseUrl}/upload/default/${file}?size=${SIZE}&offset=0`, {
      method: "PUT",
      headers: { cookie, origin: stack.baseUrl, "content-type": "application/octet-stream", "content-length": String(SIZE) },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    fs.createReadStream(source, { highWaterMark: CLIENT_CHUNK }).pipe(req);
  });
  const took = performance.now() - t;
  clearInterval(sampler);
  await run("sync", []);
  const syncMs = performance.now() - t - took;
  const rssAfter = rssMiB(web);
  if (rssAfter !== null && rssAfter > rssPeak) rssPeak = rssAfter;
  const client = process.cpuUsage(cpu0.client);
  const webCpu = cpuSplitMs(web);
  const agentCpu = cpuSplitMs(agentPid);
  const cpu = {
    web: webCpu.user + webCpu.system - cpu0.web.user - cpu0.web.system,
    webSys: webCpu.system - cpu0.web.system,
    agent: agentCpu.user + agentCpu.system - cpu0.agent.user - cpu0.agent.system,
    agentSys: agentCpu.system - cpu0.agent.system,
    client: (client.user + client.system) / 1000,
    clientSys: client.system / 1000,
  };
  if (answer.status !== 201) throw new Error(`the upload answered ${answer.status}: ${answer.text}`);
  const json = JSON.parse(answer.text) as { sha256: string; sizeBytes: number; diskId: string };
  if (json.sha256 !== expectSha || json.sizeBytes !== SIZE) throw new Error(`the upload arrived wrong: ${answer.text}`);
  return { ms: took, syncMs, rssBeforeMiB: rssBefore, rssGrowthMiB: rssPeak - rssBefore, cpu, diskId: json.diskId };
}

const sec = (msValue: number) => `${(msValue / 1000).toFixed(1)} s`;
const mbps = (msTaken: number) => SIZE / 1e6 / (msTaken / 1000);

async function main(): Promise<number> {
  if (!fs.existsSync(DEMO_ISO)) {
    console.error(`${DEMO_ISO} is missing: run bash scripts/fixtures.sh first.`);
    return 1;
  }
  if (!fs.existsSync(".next/BUILD_ID")) {
    console.error(".next is missing: run NODE_ENV=production npx next build first.");
    return 1;
  }
  // The agent's data folder (and so the storage folder) lives in os.tmpdir(); keep it off tmpfs.
  if (fsTypeOf(fs.realpathSync(os.tmpdir())) === "tmpfs") {
    const dir = path.resolve(".cache/bench-tmp");
    fs.mkdirSync(dir, { recursive: true });
    process.env.TMPDIR = dir;
  }
  console.log(`upload: ${formatBytes(SIZE)}, ${ROUNDS} rounds of cp and of the upload, alternating`);
  console.log(`machine: ${machineLine()}`);

  let stack: TestStack | null = null;
  let work: string | null = null;
  const cleanup = async () => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
    work = null;
    const s = stack;
    stack = null;
    await s?.cleanup();
  };
  const onSignal = () => {
    console.error("upload: interrupted, cleaning up");
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    stack = await startTestStack();
    const db = stack.database.db;
    const storage = path.join(stack.agent.dataDir, "disks");
    fs.mkdirSync(storage, { recursive: true });
    // The source next to the storage folder: same file system, and removed with it.
    work = fs.mkdtempSync(path.join(stack.agent.dataDir, "bench-"));
    const source = path.join(work, "source.bin");
    const tGen = performance.now();
    const sha = await generate(source);
    const sameFs = fs.statSync(source).dev === fs.statSync(storage).dev;
    console.log(
      `source: ${formatBytes(SIZE)} generated in ${((performance.now() - tGen) / 1000).toFixed(1)} s on ${fsTypeOf(fs.realpathSync(work))}` +
        ` (${sameFs ? "same file system as" : "NOT the same file system as"} the storage folder), sha256 ${sha.slice(0, 16)}…`,
    );
    const web = webPid();
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const cookie = `${SESSION_COOKIE}=${(await createSession(db, admin.id)).secret}`;
    console.log(`web server pid ${web}, RSS ${rssMiB(web)?.toFixed(1)} MiB; agent pid ${stack.agent.process.pid}`);

    // Warm-up: a small upload (loads the code paths, the database and qemu-img into cache).
    const warm = Buffer.alloc(4 * MiB, 1);
    const warmRes = await fetch(`${stack.baseUrl}/upload/default/warm.raw?size=${warm.length}`, { method: "PUT", body: warm, headers: { cookie, origin: stack.baseUrl } });
    if (warmRes.status !== 201) throw new Error(`warm-up upload answered ${warmRes.status}: ${await warmRes.text()}`);

    const cps: Sample[] = [];
    const uploads: Sample[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ["cp", "upload"] : ["upload", "cp"];
      for (const side of order) {
        if (side === "cp") {
          const dest = path.join(storage, `cp-${round}.raw`);
          const s = await timeCp(source, dest);
          cps.push(s);
          fs.rmSync(dest);
          console.log(`round ${round + 1}: cp      ${(s.ms / 1000).toFixed(2)} s  ${mbps(s.ms).toFixed(0)} MB/s; with sync ${((s.ms + s.syncMs) / 1000).toFixed(2)} s  ${mbps(s.ms + s.syncMs).toFixed(0)} MB/s`);
        } else {
          const file = `up-${round}.raw`;
          const s = await timeUpload(stack, cookie, source, file, sha, web);
          uploads.push(s);
          await stack.agent.client.deleteImage({ pool: "default", file });
          await db.disk.delete({ where: { id: s.diskId } });
          console.log(
            `round ${round + 1}: upload  ${(s.ms / 1000).toFixed(2)} s  ${mbps(s.ms).toFixed(0)} MB/s; with sync ${((s.ms + s.syncMs) / 1000).toFixed(2)} s  ${mbps(s.ms + s.syncMs).toFixed(0)} MB/s; web RSS ${s.rssBeforeMiB!.toFixed(0)} MiB, +${s.rssGrowthMiB!.toFixed(1)} MiB at peak; ` +
              `CPU (of it in the kernel): web ${sec(s.cpu!.web)} (${sec(s.cpu!.webSys)}), agent ${sec(s.cpu!.agent)} (${sec(s.cpu!.agentSys)}), client ${sec(s.cpu!.client)} (${sec(s.cpu!.clientSys)})`,
          );
        }
      }
    }

    const cpMs = median(cps.map((s) => s.ms));
    const upMs = median(uploads.map((s) => s.ms));
    const cpDiskMs = median(cps.map((s) => s.ms + s.syncMs));
    const upDiskMs = median(uploads.map((s) => s.ms + s.syncMs));
    const ratio = mbps(upMs) / mbps(cpMs);
    const ratioDisk = mbps(upDiskMs) / mbps(cpDiskMs);
    const rssWorst = Math.max(...uploads.map((s) => s.rssGrowthMiB!));
    console.log("");
    console.log("                        page cache (no fsync)      on disk (op + sync)");
    const line = (name: string, a: number, b: number) =>
      console.log(`${name.padEnd(22)} ${`${(a / 1000).toFixed(2)} s ${mbps(a).toFixed(0).padStart(5)} MB/s`.padEnd(26)} ${(b / 1000).toFixed(2)} s ${mbps(b).toFixed(0).padStart(5)} MB/s`);
    line("cp (median)", cpMs, cpDiskMs);
    line("upload (median)", upMs, upDiskMs);
    console.log(`ratio upload/cp throughput: page cache ${ratio.toFixed(2)}, on disk ${ratioDisk.toFixed(2)}`);
    console.log(`target: upload throughput >= ${RATIO_TARGET} x cp, page cache (both skip fsync): ${verdict(ratio >= RATIO_TARGET)}`);
    console.log(`target: upload throughput >= ${RATIO_TARGET} x cp, on disk (both synced): ${verdict(ratioDisk >= RATIO_TARGET)}`);
    console.log(`target: web server RSS growth during an upload <= ${RSS_TARGET_MIB} MiB (worst ${rssWorst.toFixed(1)} MiB): ${verdict(rssWorst <= RSS_TARGET_MIB)}`);
    console.log(`machine after: ${machineLine()}`);
    return 0;
  } catch (err) {
    console.error("upload: the benchmark failed:", err);
    if (stack) console.error(`web output:\n${stack.output().slice(-3000)}\nagent output:\n${stack.agent.output().slice(-3000)}`);
    return 1;
  } finally {
    await cleanup().catch((err) => console.error("upload: cleanup failed:", err));
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

main().then((code) => process.exit(code));
