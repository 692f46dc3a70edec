/**
 * Disk operations on running guests, against real QEMU (TCG): online resize, hot-plug
 * and unplug, snapshots with memory, encrypted disks. The demo guest's serial shell
 * is the witness: what the guest itself sees is checked by typing into it.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import type { GuestStatus } from "../../server/domain/types";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { SerialShell } from "../helpers/serial-shell";
import { createTestImage, testDisk, testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const TEST_TIMEOUT_MS = 240_000;
const GiB = 2 ** 30;

const isCode = (code: string, mention?: RegExp) => (err: Error & { code?: string }) => {
  assert.equal(err.code, code, err.message);
  if (mention) assert.match(err.message, mention);
  return true;
};

story("disks of running guests with real QEMU", (step) => {
  let agent: TestAgent;
  const shells: SerialShell[] = [];
  const imagePath = (file: string) => path.join(agent.dataDir, "disks", file);
  const open = async (id: string) => {
    const shell = await SerialShell.open(agent, id);
    shells.push(shell);
    return shell;
  };
  /** The size the guest sees, in 512-byte sectors, or null when it has no such disk. */
  const sectors = async (shell: SerialShell, name: string) => {
    const out = await shell.run(`cat /sys/block/${name}/size 2>/dev/null || echo none`);
    const match = /^(\d+|none)$/m.exec(out);
    return match?.[1] === "none" || !match ? null : Number(match[1]);
  };

  before(async () => {
    agent = await startTestAgent();
  });
  after(async () => {
    for (const shell of shells) shell.close();
    await agent?.cleanup();
  });

  step("online resize: the agent grows a disk a running guest uses through QMP, and the guest sees it", { timeout: TEST_TIMEOUT_MS }, async () => {
    await createTestImage(agent.client, "volgrow00001", "qcow2", 1);
    const s = testSpec("guestlive0001", { disks: [testDisk("volgrow00001")] });
    await agent.client.start(s);
    const shell = await open(s.id);
    assert.equal(await sectors(shell, "vda"), 2097152);

    const info = await agent.client.resizeImage({ pool: "default", file: "volgrow00001.qcow2", format: "qcow2" }, 2 * GiB, false);
    assert.equal(info.virtualBytes, 2 * GiB);
    assert.equal(await sectors(shell, "vda"), 4194304, "the guest sees 2 GiB at once");
    const task = (await agent.client.tasks()).find((t) => t.kind === "resize");
    assert.match(task?.title ?? "", /\(live\)/, "the resize went through the running guest");

    await assert.rejects(
      agent.client.resizeImage({ pool: "default", file: "volgrow00001.qcow2", format: "qcow2" }, 1 * GiB, true),
      isCode("conflict", /can only grow/),
    );
    await agent.client.forceOff(s.id);
  });

  step("hot-plug on q35: a disk appears in the running guest, is in use meanwhile, and goes away on detach", { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = testSpec("guestlive0002");
    await agent.client.start(s);
    const shell = await open(s.id);
    assert.equal(await sectors(shell, "vda"), null, "no disk at first");

    await createTestImage(agent.client, "volplug00001", "qcow2", 1);
    const disk = testDisk("volplug00001");
    const attached = await agent.client.attachDisk(s.id, disk);
    assert.deepEqual(attached.spec?.disks, [disk], "the running spec has the disk");
    assert.deepEqual((await agent.client.guest(s.id)).spec?.disks, [disk]);
    const specFile = JSON.parse(fs.readFileSync(path.join(agent.dataDir, "guests", s.id, "spec.json"), "utf8")) as { disks: unknown[] };
    assert.deepEqual(specFile.disks, [disk], "and so does spec.json (it outlives an agent restart)");
    await waitFor("the plugged disk in the guest", async () => (await sectors(shell, "vda")) === 2097152, 30_000, 500);

    const ref = { pool: "default", file: "volplug00001.qcow2" };
    await assert.rejects(agent.client.deleteImage(ref), isCode("conflict", /running guest/));
    await assert.rejects(agent.client.attachDisk(s.id, disk), isCode("conflict", /already attached/));
    await assert.rejects(agent.client.attachDisk(s.id, testDisk("volplug00002", "qcow2", { bus: "ide" })), isCode("invalid-input", /IDE/));
    await assert.rejects(agent.client.attachDisk(s.id, testDisk("volplug00003", "qcow2", { bus: "scsi" })), isCode("invalid-input", /SCSI controller/));
    await assert.rejects(agent.client.attachDisk(s.id, testDisk("volnothere01")), isCode("not-found", /missing/));
    await assert.rejects(agent.client.attachDisk(s.id, { ...disk, file: "../x.qcow2" } as typeof disk), isCode("invalid-input"));

    const detached: GuestStatus = await agent.client.detachDisk(s.id, "volplug00001");
    assert.deepEqual(detached.spec?.disks, []);
    assert.equal(await sectors(shell, "vda"), null, "the guest no longer has the disk");
    await assert.rejects(agent.client.detachDisk(s.id, "volplug00001"), isCode("not-found"));
    await agent.client.deleteImage(ref);
    assert.equal(fs.existsSync(imagePath("volplug00001.qcow2")), false);

    // Plug in again (the freed port, a fresh name), then unplug while the guest is paused:
    // it cannot let go in time, keeps the disk, and the agent finishes once it does.
    await createTestImage(agent.client, "volplug00004", "raw", 1);
    // Named with the wrong format: QEMU's refusal in plain words, and nothing left open
    // (the right attach below would not get the image's lock otherwise).
    await assert.rejects(
      agent.client.attachDisk(s.id, testDisk("volplug00004", "qcow2", { file: "volplug00004.raw" })),
      isCode("invalid-input", /cannot open volplug00004\.raw as qcow2/),
    );
    await agent.client.attachDisk(s.id, testDisk("volplug00004", "raw", { cache: "writeback" }));
    await waitFor("the second plugged disk", async () => (await sectors(shell, "vda")) === 2097152, 30_000, 500);
    await agent.client.pause(s.id);
    await assert.rejects(agent.client.detachDisk(s.id, "volplug00004"), isCode("timeout", /has not let go of volplug00004\.raw/));
    assert.equal((await agent.client.guest(s.id)).spec?.disks.length, 1, "a disk the guest holds stays attached");
    await assert.rejects(agent.client.deleteImage({ pool: "default", file: "volplug00004.raw" }), isCode("conflict"));
    await agent.client.resume(s.id);
    await waitFor("the agent to finish the unplug", async () => (await agent.client.guest(s.id)).spec?.disks.length === 0, 30_000, 250);
    assert.equal(await sectors(shell, "vda"), null);
    await agent.client.deleteImage({ pool: "default", file: "volplug00004.raw" });
    await agent.client.forceOff(s.id);
  });

  step("hot-plug on pc: virtio on the PCI bus, SCSI onto the controller, and a disk the guest started with unplugs too", { timeout: TEST_TIMEOUT_MS }, async () => {
    await createTestImage(agent.client, "volpcscsi001", "qcow2", 1);
    await createTestImage(agent.client, "volpcscsi002", "qcow2", 2);
    await createTestImage(agent.client, "volpcvirt001", "qcow2", 1);
    const boot = testDisk("volpcscsi001", "qcow2", { bus: "scsi" });
    const s = testSpec("guestlive0003", { machine: "pc", disks: [boot] });
    await agent.client.start(s);
    const shell = await open(s.id);
    assert.equal(await sectors(shell, "sda"), 2097152);

    await agent.client.attachDisk(s.id, testDisk("volpcscsi002", "qcow2", { bus: "scsi" }));
    await agent.client.attachDisk(s.id, testDisk("volpcvirt001"));
    await waitFor("the plugged SCSI disk", async () => (await sectors(shell, "sdb")) === 4194304, 30_000, 500);
    await waitFor("the plugged virtio disk", async () => (await sectors(shell, "vda")) === 2097152, 30_000, 500);

    const status = await agent.client.detachDisk(s.id, "volpcscsi001");
    assert.deepEqual(status.spec?.disks.map((d) => d.volume), ["volpcscsi002", "volpcvirt001"]);
    assert.equal(await sectors(shell, "sda"), null, "the disk it started with is gone");
    assert.equal(await sectors(shell, "sdb"), 4194304, "the others stay");
    // QEMU closed it with its device: plugging it in again gets the image's lock.
    const again = await agent.client.attachDisk(s.id, boot);
    assert.deepEqual(again.spec?.disks.map((d) => d.volume), ["volpcscsi002", "volpcvirt001", "volpcscsi001"]);
    await agent.client.forceOff(s.id);
  });

  step("after an agent restart, a disk plugged in before is still known and unplugs", { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = testSpec("guestlive0007");
    await agent.client.start(s);
    const shell = await open(s.id);
    await createTestImage(agent.client, "volkeep00001", "qcow2", 1);
    await agent.client.attachDisk(s.id, testDisk("volkeep00001"));
    await waitFor("the plugged disk", async () => (await sectors(shell, "vda")) === 2097152, 30_000, 500);

    await agent.kill();
    await agent.restart();
    const adopted = await agent.client.guest(s.id);
    assert.equal(adopted.state, "running");
    assert.deepEqual(adopted.spec?.disks.map((d) => d.volume), ["volkeep00001"], "the running spec survived the restart");
    await assert.rejects(agent.client.deleteImage({ pool: "default", file: "volkeep00001.qcow2" }), isCode("conflict"));

    await agent.client.detachDisk(s.id, "volkeep00001");
    assert.equal(await sectors(shell, "vda"), null);
    await agent.client.deleteImage({ pool: "default", file: "volkeep00001.qcow2" });
    await agent.client.forceOff(s.id);
  });

  step("a disk the q35 guest started with on virtio cannot be unplugged: refused with what to do", { timeout: TEST_TIMEOUT_MS }, async () => {
    await createTestImage(agent.client, "volq35boot01", "qcow2", 1);
    const s = testSpec("guestlive0004", { disks: [testDisk("volq35boot01")] });
    await agent.client.start(s);
    await assert.rejects(agent.client.detachDisk(s.id, "volq35boot01"), isCode("conflict", /Stop the guest/));
    assert.equal((await agent.client.guest(s.id)).spec?.disks.length, 1, "still attached");
    await agent.client.forceOff(s.id);
  });

  step("live snapshot: create with memory, change the disk, revert (disk and memory come back), delete", { timeout: TEST_TIMEOUT_MS }, async () => {
    await createTestImage(agent.client, "volsnap00001", "qcow2", 1);
    const ref = { pool: "default", file: "volsnap00001.qcow2", format: "qcow2" } as const;
    const s = testSpec("guestlive0005", { disks: [testDisk("volsnap00001")] });
    await agent.client.start(s);
    const shell = await open(s.id);
    /** Writes a word at the start of the disk, straight to it; reads it back from the disk, not the cache. */
    const write = (word: string) => shell.run(`printf ${word} | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null`);
    const read = async () => {
      const out = await shell.run("echo 3 > /proc/sys/vm/drop_caches; head -c 10 /dev/vda; echo");
      return /GHSNAP[A-Z]{4}|^\s*$/m.exec(out)?.[0] ?? out;
    };
    await write("GHSNAPAAAA");
    assert.equal(await read(), "GHSNAPAAAA");
    await shell.run("echo kept-in-memory > /tmp/marker");

    const created = await agent.client.snapshot(ref, "create", "s1");
    assert.deepEqual(created.snapshots.map((x) => x.name), ["s1"]);
    assert.ok(created.snapshots[0]!.vmStateBytes > 0, "the snapshot holds the guest's memory");
    const info = JSON.parse(execFileSync("qemu-img", ["info", "-U", "--output=json", imagePath("volsnap00001.qcow2")], { encoding: "utf8" })) as {
      snapshots?: Array<{ name: string; "vm-state-size": number }>;
    };
    assert.equal(info.snapshots?.[0]?.name, "s1");
    assert.ok((info.snapshots?.[0]?.["vm-state-size"] ?? 0) > 0, "qemu-img sees the memory state too");
    assert.equal((await agent.client.guest(s.id)).state, "running", "the guest runs on after the snapshot");

    await write("GHSNAPBBBB");
    await shell.run("rm /tmp/marker");
    assert.equal(await read(), "GHSNAPBBBB");
    await assert.rejects(agent.client.snapshot(ref, "create", "s1"), isCode("conflict", /already a snapshot/));

    await agent.client.snapshot(ref, "revert", "s1");
    assert.equal((await agent.client.guest(s.id)).state, "running");
    // The guest goes on from the moment of the snapshot: its shell still answers, its disk and memory are as they were.
    assert.equal(await read(), "GHSNAPAAAA", "the disk is back");
    assert.match(await shell.run("cat /tmp/marker"), /kept-in-memory/, "a file in the guest's RAM (tmpfs) is back");

    // A raw disk plugged in meanwhile cannot take part: refused, nothing taken.
    await createTestImage(agent.client, "volsnapraw01", "raw", 1);
    await agent.client.attachDisk(s.id, testDisk("volsnapraw01", "raw"));
    await assert.rejects(agent.client.snapshot(ref, "create", "s2"), isCode("invalid-input", /volsnapraw01\.raw \(raw\)/));
    await agent.client.detachDisk(s.id, "volsnapraw01");

    const deleted = await agent.client.snapshot(ref, "delete", "s1");
    assert.deepEqual(deleted.snapshots, []);
    assert.equal((await agent.client.guest(s.id)).state, "running");
    await agent.client.forceOff(s.id);
    execFileSync("qemu-img", ["check", imagePath("volsnap00001.qcow2")]);
  });

  step("encrypted disks: boot with one, plug in another, never show the passphrase, refuse a start without it", { timeout: TEST_TIMEOUT_MS }, async () => {
    const passphrase = "correct horse battery";
    const created = await agent.client.createImage({ pool: "default", file: "volcrypt0001.qcow2", format: "qcow2", bytes: GiB, volume: "volcrypt0001", passphrase });
    assert.equal(created.encrypted, true);
    await agent.client.createImage({ pool: "default", file: "volcrypt0002.qcow2", format: "qcow2", bytes: 2 * GiB, volume: "volcrypt0002", passphrase: "another secret words" });
    const s = testSpec("guestlive0006", { disks: [testDisk("volcrypt0001", "qcow2", { encrypted: true })] });
    const status = await agent.client.start(s);
    const shell = await open(s.id);
    assert.equal(await sectors(shell, "vda"), 2097152, "the guest reads the encrypted disk");

    await agent.client.attachDisk(s.id, testDisk("volcrypt0002", "qcow2", { encrypted: true }));
    await waitFor("the plugged encrypted disk", async () => (await sectors(shell, "vdb")) === 4194304, 30_000, 500);
    await shell.run("printf secretdata | dd of=/dev/vdb bs=512 count=1 conv=sync,fsync 2>/dev/null");
    assert.doesNotMatch(fs.readFileSync(imagePath("volcrypt0002.qcow2")).toString("latin1"), /secretdata/, "the data is encrypted on the host");

    assert.ok(!status.argv!.join(" ").includes(passphrase), "not in the argv the agent reports");
    for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
      let cmdline = "";
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        continue; // gone meanwhile
      }
      assert.ok(!cmdline.includes(passphrase) && !cmdline.includes("another secret words"), `process ${pid} shows a passphrase`);
    }

    await agent.client.detachDisk(s.id, "volcrypt0002");
    assert.equal(await sectors(shell, "vdb"), null);
    await agent.client.forceOff(s.id);

    fs.rmSync(path.join(agent.dataDir, "secrets", "volcrypt0001.key"));
    await assert.rejects(agent.client.start(s), isCode("not-found", /passphrase of the encrypted disk volcrypt0001\.qcow2 is missing/));
    assert.equal((await agent.client.guest(s.id)).state, "stopped");
  });
});
