/**
 * QEMU without privileges, against real QEMU: each guest's QEMU runs as a uid of its
 * own with no supplementary groups, holds descriptors of its own files only, and
 * cannot open a file by name: not another guest's image, not a passphrase, not a host
 * file, not even its own image. The attack is made the way a QEMU a guest took over
 * would make it: QMP `blockdev-add` by file name, on the guest's second monitor.
 * Needs root (the agent switches users only then); elsewhere the tests say so and skip.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import { QmpClient, QmpCommandError } from "../../server/qemu/qmp";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { SerialShell } from "../helpers/serial-shell";
import { createTestImage, testDisk, testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const FIRST_UID = 200000;
const LAST_UID = 200999;
const asRoot = process.getuid?.() === 0;

/** The Uid, Gid and Groups lines of /proc/<pid>/status. */
function credentials(pid: number): { uids: number[]; gids: number[]; groups: number[]; seccomp: number; noNewPrivs: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const numbers = (field: string) => (new RegExp(`^${field}:[ \\t]*(.*)$`, "m").exec(status)?.[1] ?? "").split(/\s+/).filter(Boolean).map(Number);
  return { uids: numbers("Uid"), gids: numbers("Gid"), groups: numbers("Groups"), seccomp: numbers("Seccomp")[0]!, noNewPrivs: numbers("NoNewPrivs")[0]! };
}

/** The regular files (not sockets, pipes or devices) a process holds open. */
function openFiles(pid: number): string[] {
  const files = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith("/") && !target.startsWith("/dev/") && fs.statSync(target).isFile()) files.add(target);
    } catch {
      // closed meanwhile
    }
  }
  return [...files].sort();
}

story("QEMU runs as a user of its own, with only the files the agent opened for it", (step) => {
  let agent: TestAgent;
  const a = testSpec("guestuser0001", { disks: [testDisk("voluser00001")] });
  const b = testSpec("guestuser0002", { disks: [testDisk("voluser00002")], cdroms: [] });
  const pids: Record<string, number> = {};
  const image = (volume: string) => path.join(agent.dataDir, "disks", `${volume}.qcow2`);
  let monitor: QmpClient | null = null;

  before(async () => {
    agent = await startTestAgent({ GUESTHOUSE_QEMU_UIDS: `${FIRST_UID}-${LAST_UID}` });
    await createTestImage(agent.client, "voluser00001", "qcow2", 1);
    await createTestImage(agent.client, "voluser00002", "qcow2", 1);
    await createTestImage(agent.client, "voluser00003", "qcow2", 1);
    // A passphrase of the kind the agent keeps for an encrypted disk.
    fs.mkdirSync(path.join(agent.dataDir, "secrets"), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(agent.dataDir, "secrets", "volsecret001.key"), "hunter2", { mode: 0o600 });
    for (const spec of [a, b]) pids[spec.id] = (await agent.client.start(spec)).pid!;
    // The guest's second monitor, which the agent's descriptor helper uses only for a moment.
    monitor = new QmpClient();
    await monitor.connect(path.join(agent.dataDir, "run", a.id, "qmp-fds.sock"));
  });
  after(async () => {
    await monitor?.close();
    await agent?.cleanup();
  });

  step("each guest's QEMU runs as a uid of its own from the range, with no supplementary groups", (t) => {
    if (!asRoot) return t.skip("the agent switches users only as root; not root here, so this is untested on this machine");
    const ca = credentials(pids[a.id]!);
    const cb = credentials(pids[b.id]!);
    for (const c of [ca, cb]) {
      assert.equal(new Set(c.uids).size, 1, `real, effective, saved and fs uid are one: ${c.uids}`);
      assert.ok(c.uids[0]! >= FIRST_UID && c.uids[0]! < LAST_UID, `uid ${c.uids[0]} is in the range (the last is the probe's)`);
      assert.equal(new Set(c.gids).size, 1);
      assert.deepEqual(c.groups, [], "no supplementary groups (not root's)");
    }
    assert.notEqual(ca.uids[0], cb.uids[0], "two guests, two users");
    // What `ps` shows: the numeric uid, not root.
    const user = execFileSync("ps", ["-o", "uid=", "-p", String(pids[a.id])], { encoding: "utf8" }).trim();
    assert.equal(Number(user), ca.uids[0]);
  });

  step("-sandbox holds in the running QEMU: a seccomp filter, and privileges it cannot regain", (t) => {
    if (!asRoot) return t.skip("needs root (see above)");
    const c = credentials(pids[a.id]!);
    assert.equal(c.seccomp, 2, "seccomp filter mode");
    const argv = fs.readFileSync(`/proc/${pids[a.id]}/cmdline`, "utf8").split("\0");
    assert.ok(argv[argv.indexOf("-sandbox") + 1]!.split(",").includes("elevateprivileges=deny"));
  });

  step("by name, QEMU can open nothing: another guest's image, a passphrase, a host file, not even its own image (permission denied)", async (t) => {
    if (!asRoot) return t.skip("needs root (see above)");
    const targets = [image("voluser00002"), path.join(agent.dataDir, "secrets", "volsecret001.key"), "/etc/shadow", image("voluser00001"), path.join(agent.dataDir, "guests", b.id, "qemu.log")];
    for (const [i, filename] of targets.entries()) {
      await assert.rejects(
        monitor!.execute("blockdev-add", { driver: "file", "node-name": `attack${i}`, filename, "read-only": true }),
        (err: unknown) => err instanceof QmpCommandError && /Permission denied/.test(err.desc),
        filename,
      );
    }
  });

  step("the files it holds open are its own disk, its CD-ROM's ISO and its own logs; nothing of the other guest's", (t) => {
    if (!asRoot) return t.skip("needs root (see above)");
    const stateA = path.join(agent.dataDir, "guests", a.id);
    const held = openFiles(pids[a.id]!).filter((f) => f.startsWith(agent.dataDir));
    assert.deepEqual(held, [image("voluser00001"), path.join(agent.dataDir, "images", "demo.iso"), path.join(stateA, "qemu.log"), path.join(stateA, "screen.ppm"), path.join(stateA, "serial.log")].sort());
    assert.ok(!openFiles(pids[b.id]!).includes(image("voluser00001")));
  });

  step("its run folder is the agent's once the guest runs: QEMU can add, swap or remove nothing in it", (t) => {
    if (!asRoot) return t.skip("needs root (see above)");
    const run = fs.statSync(path.join(agent.dataDir, "run", a.id));
    assert.equal(run.uid, process.getuid!());
    assert.equal(run.mode & 0o777, 0o700);
    assert.deepEqual(fs.readdirSync(path.join(agent.dataDir, "run", a.id)).sort(), ["qmp-fds.sock", "qmp.sock", "serial.sock", "vnc.sock"], "its sockets, and no key left");
    // The guest's own state folder (logs, spec) was never QEMU's.
    const state = fs.statSync(path.join(agent.dataDir, "guests", a.id));
    assert.equal(state.uid, process.getuid!());
    assert.equal(state.mode & 0o777, 0o700);
  });

  step("a disk plugged in while it runs arrives as descriptors, and they go when it is unplugged", async () => {
    const disk = testDisk("voluser00003");
    // The second monitor takes one client at a time: the agent's helper needs it now.
    await monitor!.close();
    await agent.client.attachDisk(a.id, disk);
    monitor = new QmpClient();
    await monitor.connect(path.join(agent.dataDir, "run", a.id, "qmp-fds.sock"));
    const sets = await monitor!.execute<Array<{ "fdset-id": number; fds: Array<{ opaque?: string }> }>>("query-fdsets");
    const plugged = sets.filter((s) => s.fds.some((f) => f.opaque?.endsWith(`:${image("voluser00003")}`)));
    assert.equal(plugged.length, 1, "one set for the new image");
    assert.deepEqual(plugged[0]!.fds.map((f) => f.opaque!.split(":")[0]).sort(), ["read-only", "read-write"]);
    if (asRoot) assert.ok(openFiles(pids[a.id]!).includes(image("voluser00003")), "QEMU holds it open");

    // Once its system runs, the demo guest lets go of a plugged disk at once (PCIe native hot-plug).
    const shell = await SerialShell.open(agent, a.id);
    try {
      await waitFor("the plugged disk in the guest", async () => /vda/.test(await shell.run("ls /sys/block")), 30_000, 500);
    } finally {
      shell.close();
    }
    await agent.client.detachDisk(a.id, disk.volume);
    const after = await monitor!.execute<Array<{ "fdset-id": number }>>("query-fdsets");
    assert.ok(!after.some((s) => s["fdset-id"] === plugged[0]!["fdset-id"]), "its set was removed");
    if (asRoot) assert.ok(!openFiles(pids[a.id]!).includes(image("voluser00003")), "QEMU holds it no more");
  });
});
