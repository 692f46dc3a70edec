/**
 * The agent SIGKILLed in the middle of its work, then started again on the same folder:
 * during an encrypted create, a conversion, a full and a linked clone, an offline
 * snapshot and an upload. What must hold afterwards: no file of the unfinished task
 * left (its temporaries, the final name, an encrypted disk's passphrase), no qemu-img it
 * started still running, an empty task journal, the images it read intact, an upload's
 * part listed and resumable to the end. Real agent, real qemu-img.
 *
 * The long operations are caught while the real qemu-img works (frozen with SIGSTOP the
 * moment it is seen, so the kill lands mid-task every run). A linked clone and a
 * snapshot take qemu-img milliseconds, too short to catch: for those, qemu-img is
 * reached through a wrapper on the agent's PATH that stops itself before it runs the
 * real qemu-img when its arguments match what the test holds (`hold`).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { story } from "../helpers/story";
import { recordFigures } from "./figures";

const MiB = 2 ** 20;

/** A process's state letter (R, S, T, Z…), or null when it is gone. */
function processState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return null;
  }
}

/** A request that will die with the agent: its failure is expected, and awaited later. */
function settled<T>(request: Promise<T>): Promise<T | Error> {
  return request.catch((err: Error) => err);
}

/** The first process whose command line contains every one of `parts`, looked for as fast as /proc can be read. */
async function catchProcess(parts: string[], timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const entry of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      let cmdline: string;
      try {
        cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      } catch {
        continue;
      }
      if (parts.every((p) => cmdline.includes(p))) return Number(entry);
    }
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`no process with ${parts.join(" … ")} within ${timeoutMs} ms`);
}

story("the agent killed in the middle of its work", (step) => {
  let agent: TestAgent;
  let bin: string;
  const kills: Array<{ operation: string; removed: string[] }> = [];
  const disks = () => path.join(agent.dataDir, "disks");
  const secrets = () => path.join(agent.dataDir, "secrets");
  const journal = () => path.join(agent.dataDir, "journal");
  const hold = (pattern: string) => fs.writeFileSync(path.join(bin, "hold"), pattern);
  /**
   * Stops a working qemu-img and waits until it is stopped: a process in the middle of a disk
   * write (state D) takes the signal only when the write returns, on a busy disk a while later.
   */
  const freeze = async (pid: number) => {
    process.kill(pid, "SIGSTOP");
    await waitFor(`qemu-img ${pid} stopped`, () => processState(pid) === "T", 10_000, 5);
  };
  /** Temporaries (`.<name>.<task>.new`) and journal entries anywhere the agent writes. */
  const leftovers = () => [
    ...[disks(), secrets()].flatMap((dir) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []).filter((f) => f.endsWith(".new")).map((f) => path.join(path.basename(dir), f))),
    ...(fs.existsSync(journal()) ? fs.readdirSync(journal()).map((f) => `journal/${f}`) : []),
  ];

  /**
   * Kills the agent while `pid` (a qemu-img of the task, stopped) is part of an unfinished
   * task, starts it again, and checks what the restart found and undid.
   */
  const killAndRestart = async (operation: string, pid: number, pending: Promise<unknown>) => {
    assert.equal(fs.readdirSync(journal()).filter((f) => f.endsWith(".json")).length, 1, `${operation}: the task is in the journal when the agent dies`);
    // The agent writes a process into the journal just after starting it; a slow disk can let the
    // wrapper stop itself first. Killed before that write lands, the agent could not know the process
    // (a task that makes no temporaries, like a snapshot, is not found by name either): the window
    // is the journal's fsync, and this test kills only after it.
    const entry = () => JSON.parse(fs.readFileSync(path.join(journal(), fs.readdirSync(journal()).find((f) => f.endsWith(".json"))!), "utf8")) as { processes: Array<{ pid: number }> };
    await waitFor(`${operation}: the journal names the process`, () => entry().processes.some((p) => p.pid === pid), 10_000, 5);
    const before = agent.output().length;
    await agent.kill();
    await pending; // the request dies with the agent
    assert.equal(processState(pid), "T", `${operation}: qemu-img outlived its agent (stopped, as the test left it)`);
    await agent.restart();
    const said = agent.output().slice(before);
    assert.match(said, /was running when the agent stopped/, `${operation}: the restarted agent says what it undid`);
    await waitFor(`${operation}: the orphaned qemu-img stopped`, () => [null, "Z"].includes(processState(pid)), 10_000);
    assert.deepEqual(leftovers(), [], `${operation}: nothing of the unfinished task is left`);
    assert.deepEqual(await agent.client.tasks(), [], `${operation}: the new agent has no task stuck`);
    kills.push({ operation, removed: [...said.matchAll(/removed (?:the unfinished )?([^,\n]+)/g)].map((m) => m[1]!) });
  };

  before(async () => {
    // qemu-img through a wrapper that stops itself (before the real one runs) when told to.
    bin = fs.mkdtempSync(path.join(os.tmpdir(), "gh-hold-"));
    const real = execFileSync("sh", ["-c", "command -v qemu-img"], { encoding: "utf8" }).trim();
    fs.writeFileSync(
      path.join(bin, "qemu-img"),
      `#!/bin/sh\npattern=$(cat '${bin}/hold' 2>/dev/null)\nif [ -n "$pattern" ]; then case " $* " in *"$pattern"*) kill -STOP $$ ;; esac; fi\nexec '${real}' "$@"\n`,
      { mode: 0o755 },
    );
    agent = await startTestAgent({ PATH: `${bin}:${process.env.PATH}` });
    // A source with 384 MiB of data: copying it takes qemu-img long enough to be caught at it.
    const source = path.join(agent.dataDir, "disks", "source.qcow2");
    const raw = path.join(agent.dataDir, "source.raw");
    const fd = fs.openSync(raw, "w");
    for (let i = 0; i < 384; i++) fs.writeSync(fd, randomBytes(MiB));
    fs.closeSync(fd);
    execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, source]);
    fs.rmSync(raw);
  });
  after(async () => {
    if (process.env.GH_DEBUG) console.log(agent?.output());
    fs.rmSync(path.join(bin, "hold"), { force: true });
    await agent?.cleanup();
    fs.rmSync(bin, { recursive: true, force: true });
    recordFigures("faults", { agentKills: kills.length, operations: kills.map((k) => k.operation), filesRemovedByRecovery: kills.reduce((n, k) => n + k.removed.length, 0) });
  });

  step("an encrypted disk being made: neither the image nor its passphrase is left", { timeout: 60_000 }, async () => {
    const pending = settled(agent.client.createImage({ pool: "default", file: "luks.qcow2", format: "qcow2", bytes: 64 * MiB, volume: "volluks00001", passphrase: "correct horse battery" }));
    // The LUKS key derivation keeps qemu-img busy for a second or two.
    const pid = await catchProcess(["create", "encrypt.format=luks", ".luks.qcow2."]);
    await freeze(pid);
    assert.equal(fs.readdirSync(secrets()).filter((f) => f.startsWith(".volluks00001.key.")).length, 1, "the passphrase waits under a temporary name");
    await killAndRestart("encrypted create", pid, pending);
    assert.equal(fs.existsSync(path.join(disks(), "luks.qcow2")), false);
    assert.equal(fs.existsSync(path.join(secrets(), "volluks00001.key")), false);
  });

  step("a conversion half-way: the new file goes, the source is intact", { timeout: 60_000 }, async () => {
    const sum = createHash("sha256").update(fs.readFileSync(path.join(disks(), "source.qcow2"))).digest("hex");
    const pending = settled(agent.client.convertImage({ pool: "default", file: "source.qcow2", format: "qcow2" }, { pool: "default", file: "copy.raw" }, "raw"));
    const pid = await catchProcess(["convert", ".copy.raw."]);
    // Caught once it has written something.
    await waitFor("qemu-img wrote part of the copy", () => fs.readdirSync(disks()).some((f) => f.startsWith(".copy.raw.") && fs.statSync(path.join(disks(), f)).blocks > 0), 20_000, 1);
    await freeze(pid);
    await killAndRestart("convert", pid, pending);
    assert.equal(fs.existsSync(path.join(disks(), "copy.raw")), false);
    assert.equal(createHash("sha256").update(fs.readFileSync(path.join(disks(), "source.qcow2"))).digest("hex"), sum, "the source is byte for byte the same");
  });

  step("a full clone half-way and a linked clone: neither is left", { timeout: 60_000 }, async () => {
    let pending = settled(agent.client.cloneImage({ pool: "default", file: "source.qcow2", format: "qcow2" }, { pool: "default", file: "full.qcow2" }, "full"));
    let pid = await catchProcess(["convert", ".full.qcow2."]);
    await freeze(pid);
    await killAndRestart("full clone", pid, pending);
    assert.equal(fs.existsSync(path.join(disks(), "full.qcow2")), false);

    hold(".linked.qcow2.");
    pending = settled(agent.client.cloneImage({ pool: "default", file: "source.qcow2", format: "qcow2" }, { pool: "default", file: "linked.qcow2" }, "linked"));
    pid = await catchProcess(["create", ".linked.qcow2."]);
    await waitFor("the wrapper stopped itself", () => processState(pid) === "T", 10_000, 5);
    await killAndRestart("linked clone", pid, pending);
    hold("");
    assert.equal(fs.existsSync(path.join(disks(), "linked.qcow2")), false);
  });

  step("an offline snapshot: its qemu-img is stopped, the image checks clean and takes the next snapshot", { timeout: 60_000 }, async () => {
    hold("snapshot");
    const pending = settled(agent.client.snapshot({ pool: "default", file: "source.qcow2", format: "qcow2" }, "create", "before-upgrade"));
    const pid = await catchProcess(["snapshot", "before-upgrade"]);
    await waitFor("the wrapper stopped itself", () => processState(pid) === "T", 10_000, 5);
    await killAndRestart("snapshot", pid, pending);
    hold("");
    const check = await agent.client.checkImage({ pool: "default", file: "source.qcow2", format: "qcow2" });
    assert.equal(check.ok, true, check.report);
    const info = await agent.client.snapshot({ pool: "default", file: "source.qcow2", format: "qcow2" }, "create", "after-restart");
    assert.deepEqual(info.snapshots.map((s) => s.name), ["after-restart"]);
  });

  step("an upload half-way: its part is kept, listed, and resumed to the end after the restart", { timeout: 60_000 }, async () => {
    const body = randomBytes(8 * MiB);
    const half = 3 * MiB;
    const put = (offset: number, bytes: Buffer, whole: boolean) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          { socketPath: agent.socketPath, method: "PUT", path: `/v1/uploads/default/upload.raw?size=${body.length}&offset=${offset}`, headers: { "content-type": "application/octet-stream", "content-length": body.length - offset } },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.write(bytes);
        if (whole) req.end();
      });
    const pending = settled(put(0, body.subarray(0, half), false));
    const part = path.join(disks(), "upload.raw.part");
    await waitFor("the first half landed", () => fs.existsSync(part) && fs.statSync(part).size === half, 20_000, 5);
    assert.equal(fs.readdirSync(journal()).filter((f) => f.endsWith(".json")).length, 1, "the upload is in the journal");
    await agent.kill();
    await pending;
    await agent.restart();
    assert.deepEqual(leftovers(), []);
    const parts = await agent.client.uploadParts();
    assert.deepEqual(parts.map((p) => [p.file, p.bytes, p.uploading]), [["upload.raw", half, false]], "the part is listed as an interrupted upload");
    assert.equal(await agent.client.uploadOffset({ pool: "default", file: "upload.raw" }), half);
    assert.equal(await put(half, body.subarray(half), true), 201);
    assert.equal(createHash("sha256").update(fs.readFileSync(path.join(disks(), "upload.raw"))).digest("hex"), createHash("sha256").update(body).digest("hex"));
    kills.push({ operation: "upload", removed: [] });
  });
});
