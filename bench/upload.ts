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
 * storage folder (not tmpfs) and is in the page cache for both; `sync` runs before every
 * measured copy so one round's writeback does not slow the next; cp runs with
 * --reflink=never (a reflink would copy nothing). cp does not fsync; the agent does (it
 * asks for writeback every 64 MiB during the upload and fsyncs before it answers), so
 * the first column ("page cache": the operation alone) tilts against the upload, and the
 * second ("on disk": the operation, then `sync`) compares both with the data on disk. Targets: upload throughput ≥ 0.8 × cp's (medians), and the web
 * server's RSS growing by ≤ 64 MiB during an upload. Prints PASS or MISS per target and
 * exits 0 either way (1 only if the benchmark could not run).
 *
 * Each round also sends the same upload straight to the agent's socket (no web, no
 * session: what a design that takes the web out of the byte path could reach at best)
 * and, when nginx is installed, through nginx to the agent's socket (that design as
 * proposed, a reverse proxy in front of the web). Both are printed beside the targets,
 * not judged.
 *
 * The client stands in for the browser, a native program: it is a small node process of
 * its own (not this one, whose heap holds Prisma), reading the file into four reused
 * 1 MiB buffers and writing each to the socket, so it neither holds the file in memory
 * nor makes garbage per read. CPU time is reported per process (user + kernel) for cp,
 * the client, nginx, the web server and the agent, the last two split into their main
 * thread and their other threads (V8's garbage collector helpers, libuv's file writes);
 * the web server's only on the web side, where it is in the path.
 *
 * BENCH_WEB_V8_FLAGS / BENCH_AGENT_V8_FLAGS (e.g. "--heap-growing-percent=100") pass V8
 * flags to the web server / agent (set with v8.setFlagsFromString at their start), to
 * measure heap settings the product does not make itself; the run says so when used.
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
import { startTestStack, type TestStack } from "../tests/helpers/web";
import { cpuCeiling, machineLine, median, missingPrerequisite, rotate, sleep, verdict, which } from "./stats";

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 2048) * MiB;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RATIO_TARGET = 0.8;
const RSS_TARGET_MIB = 64;
const SAMPLE_MS = 50;
/** Bytes the client reads from the source file at a time (a browser sends the file in similar slices). */
const CLIENT_CHUNK = 1024 * 1024;
/** The warm-up upload before the measured rounds. */
const WARMUP_BYTES = 128 * MiB;
/** Reused read buffers in the client: at most this many chunks are in flight. */
const CLIENT_BUFFERS = 4;

/**
 * The client, run with `node -e` in a process of its own. Reads the file into reused
 * buffers (a buffer is read into again once the socket has taken it) and PUTs it with
 * node:http; prints the answer as JSON. Its settings come in GH_UPLOAD_CLIENT.
 */
const CLIENT_SOURCE = `
const http = require("node:http");
const fs = require("node:fs");
const { url, socketPath, file, size, headers, chunk, buffers } = JSON.parse(process.env.GH_UPLOAD_CLIENT);
const req = http.request(url, { method: "PUT", headers, socketPath });
req.on("response", (res) => {
  const parts = [];
  res.on("data", (c) => parts.push(c));
  res.on("end", () => process.stdout.write(JSON.stringify({ status: res.statusCode, text: Buffer.concat(parts).toString() })));
});
req.on("error", (err) => { console.error(err); process.exit(1); });
const fd = fs.openSync(file, "r");
const free = Array.from({ length: buffers }, () => Buffer.allocUnsafeSlow(chunk));
const waiting = [];
const take = () => (free.length ? Promise.resolve(free.pop()) : new Promise((r) => waiting.push(r)));
const give = (b) => (waiting.length ? waiting.shift()(b) : free.push(b));
const read = (buf, len, pos) => new Promise((ok, fail) => fs.read(fd, buf, 0, len, pos, (err, n) => (err ? fail(err) : ok(n))));
(async () => {
  for (let pos = 0; pos < size; ) {
    const buf = await take();
    const n = await read(buf, Math.min(chunk, size - pos), pos);
    if (n === 0) throw new Error("the source file is shorter than announced");
    pos += n;
    req.write(n === buf.length ? buf : buf.subarray(0, n), () => give(buf));
  }
  req.end();
})().catch((err) => { console.error(err); process.exit(1); });
`;

interface Sample {
  ms: number;
  /** `sync` right after, until the data is on disk. */
  syncMs: number;
  /** The web server's RSS growth over its value just before the upload (MiB), at its peak. */
  rssGrowthMiB?: number;
  rssBeforeMiB?: number;
  /** CPU time used meanwhile (user + kernel), ms. */
  cpu: Cpu;
}

interface Cpu {
  /** The measured process (cp, or the upload's client). */
  own: number;
  web?: ThreadsCpu;
  agent?: ThreadsCpu;
  /** nginx, on the "nginx" side. */
  proxy?: ThreadsCpu;
}

interface ThreadsCpu {
  main: number;
  /** Every other thread: V8's platform workers (garbage collection) and libuv's pool (file writes). */
  others: number;
}

function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

const USER_HZ = 100;

/** CPU time (user + kernel, ms) of a process so far, its main thread apart from the others; zeros if it is gone. */
function threadsCpuMs(pid: number): ThreadsCpu {
  const out = { main: 0, others: 0 };
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
      if (tid === String(pid)) out.main += ms;
      else out.others += ms;
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const threadsDelta = (a: ThreadsCpu, b: ThreadsCpu): ThreadsCpu => ({ main: b.main - a.main, others: b.others - a.others });

/** CPU time (user + kernel, ms) of this process's children that have ended and been waited for. */
function childrenCpuMs(): number {
  const stat = fs.readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / USER_HZ; // cutime, cstime
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
  const cpu0 = childrenCpuMs();
  const t = performance.now();
  await run("cp", ["--reflink=never", source, dest]);
  const took = performance.now() - t;
  const own = childrenCpuMs() - cpu0;
  await run("sync", []);
  const syncMs = performance.now() - t - took;
  if (fs.statSync(dest).size !== SIZE) throw new Error("cp made a file of the wrong size");
  return { ms: took, syncMs, cpu: { own } };
}

/** Runs the client (CLIENT_SOURCE) to the end; its answer, parsed. */
function runClient(settings: { url: string; socketPath?: string; file: string; size: number; headers: Record<string, string> }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, GH_UPLOAD_CLIENT: JSON.stringify({ ...settings, chunk: CLIENT_CHUNK, buffers: CLIENT_BUFFERS }) };
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, ["-e", CLIENT_SOURCE], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      try {
        if (code !== 0) throw new Error(`exited ${code}`);
        resolve(JSON.parse(out) as { status: number; text: string });
      } catch (e) {
        reject(new Error(`the upload client failed (${(e as Error).message}): ${err || out}`));
      }
    });
  });
}

/**
 * Where the upload's bytes go: "web" is the product's path (browser → web → agent).
 * The other two are diagnostics, not targets: what a design without the web in the byte
 * path could reach here. "agent" sends the same request straight to the agent's socket
 * (no proxy at all: the best any such design can do); "nginx" sends it through nginx
 * (`proxy_request_buffering off`) to the agent's socket, the design proposed for it: a
 * reverse proxy in front of the web, passing upload bodies to the agent. Its
 * `auth_request` to the web (one small request per upload, not per byte) is left out.
 */
type Via = "web" | "agent" | "nginx";

/** A reverse proxy started by this benchmark, in front of the agent's socket. */
interface Proxy {
  url: string;
  pid: number;
  stop: () => Promise<void>;
}

/** nginx in the foreground (one process, no master), on a free loopback port, proxying /v1/uploads/ to the agent. */
async function startNginx(binary: string, dir: string, agentSocket: string): Promise<Proxy> {
  const { connects, freePort } = await import("../tests/helpers/net");
  const port = await freePort();
  const conf = path.join(dir, "nginx.conf");
  fs.writeFileSync(
    conf,
    [
      `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx.log;`,
      "events { worker_connections 64; }",
      `http { access_log off; client_body_temp_path ${dir}/nginx-body; proxy_temp_path ${dir}/nginx-proxy;`,
      `  server { listen 127.0.0.1:${port}; client_max_body_size 0;`,
      `    location /v1/uploads/ { proxy_pass http://unix:${agentSocket}; proxy_http_version 1.1; proxy_request_buffering off; proxy_buffering off; client_body_buffer_size 1m; }`,
      "  }",
      "}",
    ].join("\n"),
  );
  const child = spawn(binary, ["-c", conf, "-p", dir], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const { waitFor } = await import("../tests/helpers/agent");
  try {
    await waitFor("nginx to listen", async () => {
      if (child.exitCode !== null) throw new Error("nginx exited");
      return connects(port);
    }, 5000, 50);
  } catch {
    child.kill("SIGKILL");
    throw new Error(`nginx did not start: ${err || fs.readFileSync(path.join(dir, "nginx.log"), "utf8")}`);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** One upload of the source by `via` (`proxy` is used on the nginx side); the web's memory and CPU are read on the web side only. */
async function timeUpload(
  stack: TestStack,
  via: Via,
  proxy: Proxy | null,
  cookie: string,
  source: string,
  file: string,
  expectSha: string,
  web: number,
): Promise<Sample & { diskId: string | null }> {
  await run("sync", []);
  await sleep(200); // let the web's memory settle after the sync
  const agentPid = stack.agent.process.pid!;
  const nginx = via === "nginx" ? proxy : null;
  const rssBefore = via === "web" ? (rssMiB(web) ?? 0) : 0;
  let rssPeak = rssBefore;
  const sampler =
    via === "web"
      ? setInterval(() => {
          const now = rssMiB(web);
          if (now !== null && now > rssPeak) rssPeak = now;
        }, SAMPLE_MS)
      : null;
  const cpu0 = { web: threadsCpuMs(web), agent: threadsCpuMs(agentPid), proxy: nginx ? threadsCpuMs(nginx.pid) : null, client: childrenCpuMs() };
  const t = performance.now();
  const headers = { "content-type": "application/octet-stream", "content-length": String(SIZE) };
  const answer = await runClient(
    via === "web"
      ? { url: `${stack.baseUrl}/upload/default/${file}?size=${SIZE}&offset=0`, file: source, size: SIZE, headers: { ...headers, cookie, origin: stack.baseUrl } }
      : nginx
        ? { url: `${nginx.url}/v1/uploads/default/${file}?size=${SIZE}&offset=0`, file: source, size: SIZE, headers }
        : { url: `http://agent/v1/uploads/default/${file}?size=${SIZE}&offset=0`, socketPath: stack.agent.socketPath, file: source, size: SIZE, headers },
  );
  const took = performance.now() - t;
  const cpu: Cpu = {
    own: childrenCpuMs() - cpu0.client,
    agent: threadsDelta(cpu0.agent, threadsCpuMs(agentPid)),
    ...(via === "web" ? { web: threadsDelta(cpu0.web, threadsCpuMs(web)) } : {}),
    ...(nginx && cpu0.proxy ? { proxy: threadsDelta(cpu0.proxy, threadsCpuMs(nginx.pid)) } : {}),
  };
  if (sampler) clearInterval(sampler);
  await run("sync", []);
  const syncMs = performance.now() - t - took;
  if (answer.status !== 201) throw new Error(`the upload answered ${answer.status}: ${answer.text}`);
  const json = JSON.parse(answer.text) as { sha256: string; sizeBytes: number; diskId?: string };
  if (json.sha256 !== expectSha || json.sizeBytes !== SIZE) throw new Error(`the upload arrived wrong: ${answer.text}`);
  if (via !== "web") return { ms: took, syncMs, cpu, diskId: null };
  const rssAfter = rssMiB(web);
  if (rssAfter !== null && rssAfter > rssPeak) rssPeak = rssAfter;
  return { ms: took, syncMs, rssBeforeMiB: rssBefore, rssGrowthMiB: rssPeak - rssBefore, cpu, diskId: json.diskId ?? null };
}

/**
 * A module for `--import` (in NODE_OPTIONS, inherited by the stack's processes) that sets
 * the given V8 flags in the web server or the agent as they start; other processes are left alone.
 */
function v8FlagsPreload(flags: { web: string; agent: string }): string {
  const source =
    `import v8 from "node:v8";` +
    `const flags = ${JSON.stringify({ "server/web/main.ts": flags.web, "server/agent/main.ts": flags.agent })};` +
    `for (const [main, f] of Object.entries(flags)) if (f && process.argv.some((a) => a.endsWith(main))) v8.setFlagsFromString(f);`;
  return `data:text/javascript,${encodeURIComponent(source)}`;
}

/** SHA-256 of one stream on one core, MB/s: 1 GiB in 64 KiB pieces (the agent's read size). */
function sha256Speed(): number {
  const block = randomBytes(16 * 2 ** 20);
  const hash = createHash("sha256");
  const t0 = performance.now();
  for (let done = 0; done < GiB; done += block.length) {
    for (let at = 0; at < block.length; at += 65536) hash.update(block.subarray(at, at + 65536));
  }
  hash.digest();
  return GiB / 1e6 / ((performance.now() - t0) / 1000);
}

const sec = (msValue: number) => `${(msValue / 1000).toFixed(1)} s`;
const mbps = (msTaken: number) => SIZE / 1e6 / (msTaken / 1000);

async function main(): Promise<number> {
  const missing = missingPrerequisite({ build: true });
  if (missing) {
    console.error(missing);
    return 1;
  }
  // The agent's data folder (and so the storage folder) lives in os.tmpdir(); keep it off tmpfs.
  if (fsTypeOf(fs.realpathSync(os.tmpdir())) === "tmpfs") {
    const dir = path.resolve(".cache/bench-tmp");
    fs.mkdirSync(dir, { recursive: true });
    process.env.TMPDIR = dir;
  }
  const nginxBinary = which("nginx");
  console.log(
    `upload: ${formatBytes(SIZE)}, ${ROUNDS} rounds of cp, the upload, the same straight to the agent` +
      `${nginxBinary ? " and through nginx to the agent" : " (nginx is not installed: apt-get install nginx-light to measure the reverse proxy design too)"}, the order rotating each round`,
  );
  console.log(`machine: ${machineLine()}`);

  let stack: TestStack | null = null;
  let work: string | null = null;
  let proxy: Proxy | null = null;
  const cleanup = async () => {
    await proxy?.stop();
    proxy = null;
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

  const v8Flags = { web: process.env.BENCH_WEB_V8_FLAGS ?? "", agent: process.env.BENCH_AGENT_V8_FLAGS ?? "" };
  if (v8Flags.web || v8Flags.agent) {
    console.log(`V8 flags set by this run (not by the product): web "${v8Flags.web}", agent "${v8Flags.agent}"`);
    process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import=${v8FlagsPreload(v8Flags)}`.trim();
  }

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

    // Warm-up: a smaller upload the same way (compiles the hot paths, loads the database and qemu-img into cache).
    const warmSize = Math.min(SIZE, WARMUP_BYTES);
    const warm = await runClient({
      url: `${stack.baseUrl}/upload/default/warm.raw?size=${warmSize}&offset=0`,
      file: source,
      size: warmSize,
      headers: { cookie, origin: stack.baseUrl, "content-type": "application/octet-stream", "content-length": String(warmSize) },
    });
    if (warm.status !== 201) throw new Error(`warm-up upload answered ${warm.status}: ${warm.text}`);

    if (nginxBinary) proxy = await startNginx(nginxBinary, work, stack.agent.socketPath);
    const vias: Via[] = proxy ? ["web", "agent", "nginx"] : ["web", "agent"];
    const cps: Sample[] = [];
    const byVia: Record<Via, Sample[]> = { web: [], agent: [], nginx: [] };
    const uploads = byVia.web;
    const names: Record<Via, { short: string; long: string }> = {
      web: { short: "upload", long: "upload" },
      agent: { short: "agent", long: "straight to agent" },
      nginx: { short: "nginx", long: "nginx to agent" },
    };
    for (let round = 0; round < ROUNDS; round++) {
      // Each side goes first in turn (writeback and page cache state left by the one before).
      for (const side of rotate<"cp" | Via>(["cp", ...vias], round)) {
        if (side === "cp") {
          const dest = path.join(storage, `cp-${round}.raw`);
          const s = await timeCp(source, dest);
          cps.push(s);
          fs.rmSync(dest);
          console.log(`round ${round + 1}: cp      ${(s.ms / 1000).toFixed(2)} s  ${mbps(s.ms).toFixed(0)} MB/s; with sync ${((s.ms + s.syncMs) / 1000).toFixed(2)} s  ${mbps(s.ms + s.syncMs).toFixed(0)} MB/s; CPU ${sec(s.cpu.own)}`);
          continue;
        }
        const file = `${side}-${round}.raw`;
        const s = await timeUpload(stack, side, proxy, cookie, source, file, sha, web);
        byVia[side].push(s);
        await stack.agent.client.deleteImage({ pool: "default", file });
        if (s.diskId) await db.disk.delete({ where: { id: s.diskId } });
        const cpu =
          `CPU: client ${sec(s.cpu.own)}, ` +
          (side === "web" ? `web ${sec(s.cpu.web!.main)} + ${sec(s.cpu.web!.others)}, ` : "") +
          (s.cpu.proxy ? `nginx ${sec(s.cpu.proxy.main + s.cpu.proxy.others)}, ` : "") +
          `agent ${sec(s.cpu.agent!.main)} + ${sec(s.cpu.agent!.others)} (main thread + others)`;
        const memory = side === "web" ? `web RSS ${s.rssBeforeMiB!.toFixed(0)} MiB, +${s.rssGrowthMiB!.toFixed(1)} MiB at peak; ` : "";
        console.log(
          `round ${round + 1}: ${names[side].short.padEnd(7)} ${(s.ms / 1000).toFixed(2)} s  ${mbps(s.ms).toFixed(0)} MB/s; with sync ${((s.ms + s.syncMs) / 1000).toFixed(2)} s  ${mbps(s.ms + s.syncMs).toFixed(0)} MB/s; ${memory}${cpu}`,
        );
      }
    }

    // Medians of each side: the operation alone ("page cache") and with the sync after it ("on disk").
    const timesOf = (samples: Sample[]) => ({ ms: median(samples.map((x) => x.ms)), diskMs: median(samples.map((x) => x.ms + x.syncMs)) });
    const cp = timesOf(cps);
    const times = Object.fromEntries(vias.map((v) => [v, timesOf(byVia[v])])) as Record<Via, { ms: number; diskMs: number }>;
    const ratioOf = (v: Via) => ({ pageCache: mbps(times[v].ms) / mbps(cp.ms), onDisk: mbps(times[v].diskMs) / mbps(cp.diskMs) });
    const ratio = ratioOf("web");
    const rssWorst = Math.max(...uploads.map((s) => s.rssGrowthMiB!));
    console.log("");
    console.log(`${"".padEnd(28)} page cache (op alone)      on disk (op + sync)`);
    const line = (name: string, a: number, b: number) =>
      console.log(`${name.padEnd(28)} ${`${(a / 1000).toFixed(2)} s ${mbps(a).toFixed(0).padStart(5)} MB/s`.padEnd(26)} ${(b / 1000).toFixed(2)} s ${mbps(b).toFixed(0).padStart(5)} MB/s`);
    line("cp (median)", cp.ms, cp.diskMs);
    for (const v of vias) line(`${names[v].long} (median)`, times[v].ms, times[v].diskMs);
    /** CPU seconds per GiB moved, the median over the samples. */
    const perGiB = (samples: Sample[], of: (c: Cpu) => number) => (median(samples.map((x) => of(x.cpu))) / 1000) * (GiB / SIZE);
    const sec2 = (value: number) => `${value.toFixed(2)} s`;
    const both = (t?: ThreadsCpu) => (t ? t.main + t.others : 0);
    console.log(`ratio upload/cp throughput: page cache ${ratio.pageCache.toFixed(2)}, on disk ${ratio.onDisk.toFixed(2)}`);
    for (const v of vias.filter((x) => x !== "web")) {
      const what = v === "agent" ? "the same client straight to the agent's socket, the best any such design can do" : "the same client through nginx to the agent's socket, the reverse proxy design";
      const samples = byVia[v];
      console.log(
        `without the web in the byte path (${what}), not a target: ` +
          `page cache ${ratioOf(v).pageCache.toFixed(2)} x cp, on disk ${ratioOf(v).onDisk.toFixed(2)} x cp; ` +
          `CPU per GiB: client ${sec2(perGiB(samples, (c) => c.own))}` +
          (v === "nginx" ? `, nginx ${sec2(perGiB(samples, (c) => both(c.proxy)))}` : "") +
          `, agent ${sec2(perGiB(samples, (c) => both(c.agent)))}`,
      );
    }
    const allPerGiB = perGiB(uploads, (c) => c.own + both(c.web) + both(c.agent));
    console.log(
      `CPU per GiB (medians; user + kernel): cp ${sec2(perGiB(cps, (c) => c.own))}; upload: client ${sec2(perGiB(uploads, (c) => c.own))}, ` +
        `web ${sec2(perGiB(uploads, (c) => c.web!.main))} main + ${sec2(perGiB(uploads, (c) => c.web!.others))} other threads, ` +
        `agent ${sec2(perGiB(uploads, (c) => c.agent!.main))} main + ${sec2(perGiB(uploads, (c) => c.agent!.others))} other threads, ` +
        `all ${sec2(allPerGiB)}`,
    );
    // What this machine allows an upload at all: its SHA-256 (one stream, sequential), and
    // its CPU: all processes' time spread over every core, and no faster than its busiest
    // single thread (the client, the web's and the agent's main threads each run on one core).
    const hashMBps = sha256Speed();
    const busiest = Math.max(perGiB(uploads, (c) => c.own), perGiB(uploads, (c) => c.web!.main), perGiB(uploads, (c) => c.agent!.main));
    const ceiling = cpuCeiling(allPerGiB, busiest) * (GiB / 1e6);
    console.log(
      `ceilings: SHA-256 of one stream here ${hashMBps.toFixed(0)} MB/s = ${(hashMBps / mbps(cp.ms)).toFixed(2)} x cp (page cache); ` +
        `the upload's processes use ${allPerGiB.toFixed(2)} CPU-s per GiB, the busiest thread ${busiest.toFixed(2)}: at most ${ceiling.toFixed(0)} MB/s on ${os.cpus().length} cores ` +
        `= ${(ceiling / mbps(cp.ms)).toFixed(2)} x cp (page cache), ${(ceiling / mbps(cp.diskMs)).toFixed(2)} x cp (on disk)`,
    );
    console.log(`target: upload throughput >= ${RATIO_TARGET} x cp, page cache (the operation alone; only the upload fsyncs): ${verdict(ratio.pageCache >= RATIO_TARGET)}`);
    console.log(`target: upload throughput >= ${RATIO_TARGET} x cp, on disk (both synced): ${verdict(ratio.onDisk >= RATIO_TARGET)}`);
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
