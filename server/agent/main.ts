/**
 * The host agent: one per host, owns QEMU. Run with `tsx server/agent/main.ts`.
 * It re-adopts running guests at start and leaves them running when it stops.
 * `tsx server/agent/main.ts --accelerator` only says which accelerator guests would get
 * here and why (probing KVM if that has not been done for this QEMU and kernel).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { AGENT_HEAP_GROWING_PERCENT, giveHeapRoom } from "../heap";
import { assertFoldersApart, loadAgentConfig } from "./config";
import { createAgentServer } from "./api";
import { Consoles } from "./console";
import { assertRunDirReachable } from "./qemu-user";
import { Supervisor } from "./supervisor";
import { Images } from "./images";
import { Journal } from "./journal";
import { diagnose } from "./networks/doctor";
import { localNetHost, Networks, runCommand } from "./networks/manager";
import { AddressWatch } from "./networks/watch";
import { Tasks } from "./tasks";
import { Metrics } from "./metrics/sampler";
import { ensureVncTls } from "./tls";

async function socketInUse(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createConnection({ path: socketPath });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}

async function main(): Promise<void> {
  // The agent keeps ~11 MB live: up to ~55 MB before a full collection (see server/heap.ts).
  giveHeapRoom(AGENT_HEAP_GROWING_PERCENT);
  if (process.argv.includes("--accelerator")) {
    const config = await loadAgentConfig(process.env);
    console.log(`accelerator: ${config.accelerator} (${config.acceleratorReason}); QEMU ${config.qemuVersion}`);
    return;
  }
  const config = await loadAgentConfig(process.env, (line) => console.log(`agent: ${line}`));
  for (const dir of [config.dataDir, config.guestsDir, config.secretsDir, config.isoDir, ...Object.values(config.pools)]) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  assertFoldersApart(config.dataDir, config.pools, config.isoDir);
  // Guests' run folders: QEMU's users pass through this folder (0711: they cannot list it).
  fs.mkdirSync(config.runDir, { recursive: true, mode: 0o711 });
  fs.chmodSync(config.runDir, 0o711);
  if (process.getuid?.() === 0) assertRunDirReachable(config.runDir);
  if (Buffer.byteLength(path.join(config.runDir, "x".repeat(25), "qmp-fds.sock")) > 107) {
    throw new Error(`The run folder ${config.runDir} is too deep for unix socket paths (108 bytes); choose a shorter GUESTHOUSE_RUN_DIR.`);
  }
  if (fs.existsSync(config.socketPath)) {
    if (await socketInUse(config.socketPath)) throw new Error(`Another agent already listens on ${config.socketPath}.`);
    fs.rmSync(config.socketPath);
  }

  if (config.vncTls) {
    // Before any guest starts: QEMU reads these when a guest with a TLS display starts.
    const tls = await ensureVncTls(config.vncTls.dir, config.vncTls.names);
    if (tls.made.includes("ca")) console.log(`agent: made a new certificate authority for TLS VNC in ${config.vncTls.dir}; viewers must trust its ca-cert.pem`);
    if (tls.made.includes("server")) console.log(`agent: issued the TLS VNC server certificate for ${tls.names.join(", ")}`);
  }

  // Managed networks: each kept one set up again (what still runs is kept), before guests
  // on them are adopted or started.
  // dnsmasq (unprivileged once started) reads its host entries from the run folder (0711).
  const networks = new Networks(path.join(config.dataDir, "networks"), localNetHost, path.join(config.runDir, "networks"), config.forwards);
  // Guests' addresses on them, for the event stream: every network followed from here on.
  const addresses = new AddressWatch(networks, path.join(config.dataDir, "networks"), localNetHost).start();
  const adopted = await networks.adopt();
  if (adopted.length) console.log(`agent: ${adopted.length} managed network(s) set up again: ${adopted.join(", ")}`);
  const supervisor = new Supervisor(config, networks);
  console.log(`agent: QEMU runs as ${supervisor.users.describe()}, with nothing but the files the agent opens for it`);
  await supervisor.adopt();
  // Ports of guests that stopped while no agent watched go.
  await networks.prune(new Set(supervisor.list().filter((g) => g.pid !== null).map((g) => g.id)));
  // What the last agent's tasks left unfinished goes before anything new begins (server/agent/journal.ts).
  const journal = new Journal(path.join(config.dataDir, "journal"));
  for (const line of journal.recover()) console.log(`agent: ${line}`);
  // One task runner for the agent: image operations and pastes share it (and its event stream).
  const tasks = new Tasks({ qemuImgJobs: config.qemuImgJobs, journal });
  const images = new Images(config, tasks, supervisor);
  const consoles = new Consoles(config, supervisor, tasks);
  const doctor = () =>
    diagnose({ run: (command, args) => runCommand(command, args), readFile: (file) => fsp.readFile(file, "utf8").catch(() => null) }, { ipv6: networks.list().some((n) => n.ipv6) });
  // Metrics: every running guest and the host sampled each interval, the last hour kept for the web.
  const metrics = new Metrics(() => supervisor.metricsTargets(), {
    intervalMs: config.metricsIntervalMs || 10_000,
    liveIntervalMs: Math.min(1000, config.metricsIntervalMs || 1000),
    pools: config.pools,
    cgroups: supervisor.cgroups,
  });
  if (config.metricsIntervalMs > 0) metrics.start();
  else console.log("agent: metrics are off (GUESTHOUSE_METRICS_INTERVAL_MS=0): figures are read only when asked, no history is kept");
  if (supervisor.cgroups.unavailable) console.log(`agent: guests' pressure is not measured: ${supervisor.cgroups.unavailable}`);
  const server = createAgentServer(config, supervisor, images, consoles, networks, doctor, addresses, metrics);
  // Interrupted uploads that nobody resumed go after GUESTHOUSE_UPLOAD_PART_HOURS; looked for
  // at start and then a few times per lifetime (at most hourly).
  const expireParts = () =>
    void images.expireParts().then((gone) => {
      for (const key of gone) console.log(`agent: removed the interrupted upload ${key} (not resumed in time)`);
    });
  expireParts();
  setInterval(expireParts, Math.min(3600_000, Math.max(1000, config.uploadPartMs / 4))).unref();
  const oldMask = process.umask(0o177);
  server.listen(config.socketPath, () => {
    process.umask(oldMask);
    const tls = config.vncTls ? `, TLS VNC on ${config.vncTls.address} ports ${config.vncTls.firstPort}-${config.vncTls.lastPort}` : "";
    console.log(`agent: listening on ${config.socketPath} (accelerator ${config.accelerator}${tls}, ${supervisor.list().length} guests adopted)`);
  });

  const stop = async (signal: string) => {
    console.log(`agent: ${signal}, leaving guests running`);
    server.close();
    metrics.stop();
    consoles.close();
    await supervisor.detachAll();
    fs.rmSync(config.socketPath, { force: true });
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

// A bug in one request must not take the agent (and the view of every guest) down.
process.on("unhandledRejection", (reason) => console.error("agent: unhandled rejection:", reason));
process.on("uncaughtException", (err) => console.error("agent: uncaught exception:", err));

main().catch((err) => {
  // A missing QEMU, a bad setting, a busy socket: said in one line, not as a stack.
  console.error(`agent: cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
