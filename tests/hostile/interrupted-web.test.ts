/**
 * Work the web started, cut off: a web process SIGKILLed while it makes a new guest's
 * disks, and the agent SIGKILLed under a conversion the web recorded. Real agent, real
 * qemu-img, real database through Prisma; the web's own code (makeGuest, recordTask,
 * reconcileTasks). What must hold: the database stays consistent (no guest, no disk row
 * without its file, no task left running) and no file is left that no row owns.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import type { SessionUser } from "../../server/auth/sessions";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { createTestDb, sessionUser, useAsProcessDatabase, type TestDb } from "../helpers/db";
import { relay, type Relay, type RelayHook } from "../helpers/relay";
import { story } from "../helpers/story";

story("work the web started, cut off", (step) => {
  let agent: TestAgent;
  let database: TestDb;
  let proxy: Relay;
  let hook: RelayHook | null = null;
  let user: SessionUser;
  let host: { id: string; endpoint: string };
  let tasks: typeof import("../../server/web/tasks");
  const disksDir = () => path.join(agent.dataDir, "disks");

  before(async () => {
    agent = await startTestAgent();
    database = await createTestDb();
    useAsProcessDatabase(database);
    tasks = await import("../../server/web/tasks");
    proxy = await relay(agent.socketPath, path.join(agent.dataDir, "relay.sock"), () => hook);
    const db = database.db;
    const team = await db.team.create({ data: { name: "cut-off" } });
    const row = await db.host.create({ data: { name: "cut-off", endpoint: `unix:${path.join(agent.dataDir, "relay.sock")}` } });
    host = { id: row.id, endpoint: row.endpoint };
    const m = await db.user.create({ data: { username: "member", passwordHash: "x", role: "member", teamId: team.id, memberships: { create: { teamId: team.id, role: "member" } } } });
    user = await sessionUser(db, m.id);
  });
  after(async () => {
    proxy?.close();
    await agent?.cleanup();
    await database?.cleanup();
  });

  step("a web process killed after the agent made two of a new guest's disks: its next start removes them, and the task says why", { timeout: 60_000 }, async () => {
    // An existing disk of the member's, which nothing may touch.
    await agent.client.createImage({ pool: "default", file: "keep.qcow2", format: "qcow2", bytes: 2 ** 20, volume: "volkeep00001" });
    await database.db.disk.create({ data: { volume: "volkeep00001", pool: "default", file: "keep.qcow2", format: "qcow2", sizeBytes: 2n ** 20n, bus: "virtio", ownerId: user.id, teamId: user.teamId, hostId: host.id } });
    let creates = 0;
    hook = (req) => (req.method === "POST" && req.url === "/v1/images" && ++creates === 2 ? "hold-answer" : undefined);
    const definition = {
      guesthouse: 1, name: "cutoff", machine: "q35", firmware: "bios", vcpus: 1, sockets: 1, threads: 1, memoryMiB: 256, bootOrder: ["disk"],
      display: "std", serial: true, rtc: "utc", description: "", tags: [], cdroms: [], nics: [],
      disks: [1, 2].map(() => ({ sizeGiB: 1, format: "qcow2", bus: "virtio", cache: "none", readOnly: false })),
    };
    const web = spawn(process.execPath, ["--import", "tsx", "tests/helpers/make-guest-process.ts", JSON.stringify({ userId: user.id, host, definition })], {
      env: { ...process.env, DATABASE_URL: database.url },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let said = "";
    web.stdout!.on("data", (c: Buffer) => (said += c.toString()));
    web.stderr!.on("data", (c: Buffer) => (said += c.toString()));
    const exited = new Promise((r) => web.once("exit", r));
    const held = await Promise.race([proxy.held(), exited.then(() => Promise.reject(new Error(`the web process ended first: ${said}`)))]);
    assert.equal(held.status, 201, "the agent made the second disk; the web did not hear of it");
    web.kill("SIGKILL");
    await exited;
    hook = null;

    const made = fs.readdirSync(disksDir()).filter((f) => f.startsWith("cutoff-"));
    assert.equal(made.length, 2, "both disks are on the host");
    const running = await database.db.task.findMany({ where: { state: "running" } });
    assert.equal(running.length, 1, "the task row the web wrote before it began is still running");
    assert.deepEqual((JSON.parse(running[0]!.effect!) as { files: Array<{ file: string }> }).files.map((f) => f.file).sort(), made.sort(), "it named both disks before they were made");
    assert.equal(await database.db.guest.count(), 0);

    // The web's next start.
    await tasks.reconcileTasks({ atStartup: true });
    assert.deepEqual(fs.readdirSync(disksDir()).filter((f) => f.startsWith("cutoff-")), [], "the disks no row took are gone");
    assert.ok(fs.existsSync(path.join(disksDir(), "keep.qcow2")), "the member's own disk stays");
    const row = await database.db.task.findUniqueOrThrow({ where: { id: running[0]!.id } });
    assert.equal(row.state, "failed");
    assert.match(row.message ?? "", /web server restarted while this ran/);
    assert.deepEqual(await database.db.disk.findMany({ select: { file: true } }), [{ file: "keep.qcow2" }]);
  });

  step("the agent killed under a conversion the web recorded: the row fails, the pending disk row and any file of its name go", { timeout: 60_000 }, async () => {
    // 256 MiB of data to copy: long enough to catch qemu-img at it.
    const source = path.join(disksDir(), "keep.qcow2");
    const raw = path.join(agent.dataDir, "data.raw");
    fs.writeFileSync(raw, Buffer.alloc(256 * 2 ** 20, 0x5a));
    fs.rmSync(source);
    await import("node:child_process").then(({ execFileSync }) => execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, source]));
    fs.rmSync(raw);
    const pending = await database.db.disk.create({ data: { volume: "volconv00001", pool: "default", file: "keep-copy.raw", format: "raw", state: "pending", sizeBytes: 0n, bus: "virtio", ownerId: user.id, teamId: user.teamId, hostId: host.id } });
    const task = await agent.client.convertImage({ pool: "default", file: "keep.qcow2", format: "qcow2" }, { pool: "default", file: "keep-copy.raw" }, "raw");
    await tasks.recordTask(user.id, host.id, task, { diskId: pending.id, effect: { type: "ready-when-done", diskId: pending.id } });
    const pid = await waitFor("qemu-img converting", () => {
      for (const entry of fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
        try {
          if (fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(".keep-copy.raw.")) return Number(entry);
        } catch {
          // gone
        }
      }
      return 0;
    }, 20_000, 2);
    process.kill(pid, "SIGSTOP");
    await agent.kill();
    await agent.restart();
    // What the web does when its agent answers again (server/web/main.ts, on the host's change).
    await tasks.reconcileTasks();
    const row = await database.db.task.findUniqueOrThrow({ where: { id: task.id } });
    assert.equal(row.state, "failed");
    assert.match(row.message ?? "", /agent restarted while this task ran/);
    assert.equal(await database.db.disk.count({ where: { id: pending.id } }), 0, "the pending row is gone");
    assert.deepEqual(fs.readdirSync(disksDir()).filter((f) => f.includes("keep-copy")), [], "no file of the conversion is left");
    assert.equal(await database.db.task.count({ where: { state: "running" } }), 0, "no task is left running");
  });
});
