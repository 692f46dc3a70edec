/**
 * The host agent against real QEMU (TCG here; KVM where the host has it): boot the
 * demo ISO, check QMP, serial, VNC, stop it both ways, survive an agent SIGKILL.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import type { GuestSpec } from "../../server/domain/types";
import { GuesthouseError } from "../../server/domain/errors";
import { createTestImage, testDisk, testSpec } from "../helpers/specs";
import { processGone, qemuPidsUnder, startTestAgent, waitFor, within, type TestAgent } from "../helpers/agent";
import { story } from "../helpers/story";

const BOOT_TIMEOUT_MS = 90_000;

function demoSpec(id: string, volume: string | null, overrides: Partial<GuestSpec> = {}): GuestSpec {
  return testSpec(id, {
    name: `demo-${id.slice(0, 6)}`,
    disks: volume ? [testDisk(volume)] : [],
    nics: [{ mac: "52:54:00:ab:cd:01", model: "virtio", mode: "user", isolated: false, forwards: [] }],
    ...overrides,
  });
}

story("agent with real QEMU", (step) => {
  let agent: TestAgent;
  const spec = demoSpec("guestaaaa0001", "volaaaa00001");
  const stateDir = () => path.join(agent.dataDir, "guests", spec.id);
  const serialLog = () => fs.readFileSync(path.join(stateDir(), "serial.log"), "utf8");
  const countMarker = (marker: string) => serialLog().split(marker).length - 1;
  /** What a QEMU run leaves that must go with it: its pid file and last screen, and its run folder with the sockets. */
  const socketsLeft = () => [
    ...["qemu.pid", "screen.ppm"].filter((f) => fs.existsSync(path.join(stateDir(), f))),
    ...(fs.existsSync(path.join(agent.dataDir, "run", spec.id)) ? ["run folder"] : []),
  ];

  before(async () => {
    agent = await startTestAgent();
    await createTestImage(agent.client, "volaaaa00001", "qcow2", 1);
  });
  after(async () => {
    await agent?.cleanup();
  });

  step("reports its accelerator and the ISOs in its image folder", async () => {
    const host = await agent.client.host();
    assert.ok(host.accelerator === "kvm" || host.accelerator === "tcg");
    assert.ok(host.acceleratorReason.length > 0);
    assert.match(host.qemuVersion, /^\d+\.\d+/);
    assert.deepEqual(host.isos.map((i) => i.name), ["demo.iso"]);
  });

  step("a QEMU that refuses to start is reported with its exit code and its own words", async () => {
    const bad = demoSpec("guestbad00001", "volbad000001");
    fs.writeFileSync(path.join(agent.dataDir, "disks", "volbad000001.qcow2"), "this is not a qcow2 image\n".repeat(100));
    await assert.rejects(agent.client.start(bad), (err: GuesthouseError) => {
      assert.equal(err.code, "qemu-failed");
      assert.match(err.message, /exited with code 1/);
      assert.match(err.message, /qcow2/i, "QEMU's own complaint about the image is passed on");
      return true;
    });
    assert.equal((await agent.client.guest(bad.id)).state, "stopped");
    assert.deepEqual(qemuPidsUnder(path.join(agent.dataDir, "guests", bad.id)), []);
  });

  step("a spec naming a missing ISO is refused before QEMU runs", async () => {
    const missing = { ...demoSpec("guestmiss0001", null), cdroms: [{ iso: "nope.iso" }] };
    await assert.rejects(agent.client.start(missing), (err: GuesthouseError) => err.code === "not-found");
  });

  step("a disk or ISO that is a symlink out of its folder is refused before QEMU runs", async () => {
    const outside = path.join(agent.dataDir, "outside.qcow2");
    fs.copyFileSync(path.join(agent.dataDir, "images", "demo.iso"), path.join(agent.dataDir, "outside.iso"));
    await createTestImage(agent.client, "volsym000001", "qcow2", 1);
    fs.renameSync(path.join(agent.dataDir, "disks", "volsym000001.qcow2"), outside);
    fs.symlinkSync(outside, path.join(agent.dataDir, "disks", "volsym000001.qcow2"));
    fs.symlinkSync(path.join(agent.dataDir, "outside.iso"), path.join(agent.dataDir, "images", "linked.iso"));
    try {
      for (const s of [demoSpec("guestsym0001", "volsym000001"), { ...demoSpec("guestsym0002", null), cdroms: [{ iso: "linked.iso" }] }]) {
        await assert.rejects(agent.client.start(s), (err: GuesthouseError) => err.code === "invalid-input" && /symbolic link/.test(err.message));
        assert.deepEqual(qemuPidsUnder(path.join(agent.dataDir, "guests", s.id)), [], "no QEMU was started");
      }
    } finally {
      fs.rmSync(path.join(agent.dataDir, "disks", "volsym000001.qcow2"));
      fs.rmSync(path.join(agent.dataDir, "images", "linked.iso"));
    }
  });

  step("a disk whose header names a file outside the storage folders is refused before QEMU runs; a raw disk's bytes are not read as a header", async () => {
    // Headers rewritten after the disk was registered (the registration checks them too):
    // a backing file on the host, an external data file, and a VMDK descriptor's extent.
    const disks = path.join(agent.dataDir, "disks");
    const made: Array<[GuestSpec, RegExp]> = [];
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", "/etc/hostname", "-F", "raw", path.join(disks, "volhdr000001.qcow2"), "1G"]);
    made.push([demoSpec("guesthdr0001", "volhdr000001"), /is based on "hostname", which is not an image in this host's storage folders/]);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-o", `data_file=${path.join(agent.dataDir, "host-data.bin")}`, path.join(disks, "volhdr000002.qcow2"), "1M"]);
    made.push([demoSpec("guesthdr0002", "volhdr000002"), /keeps its data in another file/]);
    fs.writeFileSync(path.join(disks, "volhdr000003.vmdk"), `# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "/etc/hostname" 0\n`);
    made.push([demoSpec("guesthdr0003", null, { disks: [testDisk("volhdr000003", "qcow2", { file: "volhdr000003.vmdk", format: "vmdk" })] }), /is a VMDK descriptor/]);
    try {
      for (const [s, why] of made) {
        await assert.rejects(agent.client.start(s), (err: GuesthouseError) => err.code === "invalid-input" && why.test(err.message), s.id);
        assert.deepEqual(qemuPidsUnder(path.join(agent.dataDir, "guests", s.id)), [], "no QEMU was started");
      }
      // The same qcow2 header planted in a raw disk: QEMU is told "raw", so it is the guest's data, not a header.
      fs.copyFileSync(path.join(disks, "volhdr000001.qcow2"), path.join(disks, "volhdr000004.raw"));
      const raw = demoSpec("guesthdr0004", "volhdr000004", { disks: [testDisk("volhdr000004", "raw")] });
      await agent.client.start(raw);
      assert.equal(qemuPidsUnder(path.join(agent.dataDir, "guests", raw.id)).length, 1, "QEMU runs the raw disk");
      await agent.client.forceOff(raw.id);
    } finally {
      for (const f of ["volhdr000001.qcow2", "volhdr000002.qcow2", "volhdr000003.vmdk", "volhdr000004.raw"]) fs.rmSync(path.join(disks, f), { force: true });
      fs.rmSync(path.join(agent.dataDir, "host-data.bin"), { force: true });
    }
  });

  step("two concurrent starts give one QEMU; the guest boots the demo ISO", async () => {
    const results = await Promise.allSettled([agent.client.start(spec), agent.client.start(spec)]);
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    assert.equal(ok.length, 1, "exactly one start succeeds");
    assert.equal(refused.length, 1);
    assert.equal(((refused[0] as PromiseRejectedResult).reason as GuesthouseError).code, "conflict");
    assert.equal(qemuPidsUnder(stateDir()).length, 1, "one QEMU process");

    const status = await agent.client.guest(spec.id);
    assert.equal(status.state, "running", "QMP query-status says running");
    assert.ok(status.pid && status.pid > 1);
    const running = fs.readFileSync(`/proc/${status.pid}/cmdline`, "utf8").split("\0").slice(0, -1);
    assert.deepEqual(status.argv, running, "the argv shown is the command line of the QEMU process");
    assert.deepEqual(await agent.client.argv(spec), running, "and the one the guest page shows for its spec");

    await waitFor("the boot marker on the serial log", () => countMarker("GUESTHOUSE-DEMO-READY") > 0, BOOT_TIMEOUT_MS);
    assert.match(serialLog(), /GUESTHOUSE-DISK vda 2097152/, "the 1 GiB virtio disk is attached");
  });

  step("the VNC socket, reached through the agent, answers with an RFB version", async () => {
    const { stream } = await agent.client.openVnc(spec.id);
    const greeting = await new Promise<string>((resolve, reject) => {
      let data = "";
      stream.on("data", (c: Buffer) => {
        data += c.toString("latin1");
        if (data.length >= 12) resolve(data.slice(0, 12));
      });
      stream.once("error", reject);
    });
    stream.destroy();
    assert.match(greeting, /^RFB 003\.00[38]\n$/);
  });

  step("pause and resume: QMP stops and continues the vCPUs", async () => {
    const paused = await agent.client.pause(spec.id);
    assert.equal(paused.state, "paused");
    await assert.rejects(agent.client.pause(spec.id), (err: GuesthouseError) => err.code === "conflict" && /paused/.test(err.message));
    await assert.rejects(agent.client.shutdown(spec.id), (err: GuesthouseError) => err.code === "conflict");
    const resumed = await agent.client.resume(spec.id);
    assert.equal(resumed.state, "running");
    assert.ok(resumed.since >= paused.since);
  });

  step("reset restarts the guest inside the same QEMU", async () => {
    const before = await agent.client.guest(spec.id);
    const readyBefore = countMarker("GUESTHOUSE-DEMO-READY");
    await agent.client.reset(spec.id);
    await waitFor("the guest to boot again", () => countMarker("GUESTHOUSE-DEMO-READY") > readyBefore, BOOT_TIMEOUT_MS);
    const after = await agent.client.guest(spec.id);
    assert.equal(after.state, "running");
    assert.equal(after.pid, before.pid, "a reset keeps the QEMU process");
  });

  step("reboot powers off over ACPI and starts a fresh QEMU", async () => {
    const before = await agent.client.guest(spec.id);
    const readyBefore = countMarker("GUESTHOUSE-DEMO-READY");
    const poweroffBefore = countMarker("GUESTHOUSE-DEMO-POWEROFF");
    const status = await agent.client.reboot(spec);
    assert.equal(status.state, "shutting-down");
    await waitFor("the guest to boot again", () => countMarker("GUESTHOUSE-DEMO-READY") > readyBefore, BOOT_TIMEOUT_MS);
    assert.equal(countMarker("GUESTHOUSE-DEMO-POWEROFF"), poweroffBefore + 1, "it went through an ACPI power-off");
    const after = await agent.client.guest(spec.id);
    assert.equal(after.state, "running");
    assert.notEqual(after.pid, before.pid, "a reboot starts a new QEMU");
    assert.equal(qemuPidsUnder(stateDir()).length, 1);
  });

  step("after the agent is SIGKILLed and restarted, the guest still runs and is controllable", async () => {
    const before = await agent.client.guest(spec.id);
    await agent.kill();
    assert.equal(qemuPidsUnder(stateDir()).length, 1, "killing the agent did not stop the guest");
    await agent.restart();
    const adopted = await agent.client.guest(spec.id);
    assert.equal(adopted.state, "running");
    assert.equal(adopted.pid, before.pid, "the same QEMU process was adopted");
    assert.deepEqual(adopted.argv, before.argv);
    // Controllable: the ACPI shutdown below goes through the re-established QMP connection.
  });

  step("ACPI shutdown ends the process and cleans the sockets", async () => {
    const { pid } = await agent.client.guest(spec.id);
    const status = await agent.client.shutdown(spec.id);
    assert.equal(status.state, "shutting-down");
    await waitFor("the guest to power off", async () => (await agent.client.guest(spec.id)).state === "stopped", 60_000);
    assert.match(serialLog(), /GUESTHOUSE-DEMO-POWEROFF/, "the guest saw the power button");
    assert.ok(processGone(pid!), "the QEMU process is gone");
    assert.deepEqual(socketsLeft(), []);
  });

  step("force off ends a running guest at once and cleans the sockets", async () => {
    await agent.client.start(spec);
    assert.equal(qemuPidsUnder(stateDir()).length, 1);
    const status = await agent.client.forceOff(spec.id);
    assert.equal(status.state, "stopped");
    assert.deepEqual(qemuPidsUnder(stateDir()), []);
    assert.deepEqual(socketsLeft(), []);
  });

  step("a QEMU killed from outside shows as crashed with its log, and starts again", async () => {
    const { pid } = await agent.client.start(spec);
    process.kill(pid!, "SIGKILL");
    const crashed = await waitFor(
      "the crash to be noticed",
      async () => {
        const s = await agent.client.guest(spec.id);
        return s.state === "crashed" ? s : null;
      },
      2_000,
      50,
    );
    assert.equal(crashed.pid, null);
    assert.notEqual(crashed.logTail, null);
    assert.deepEqual(socketsLeft(), []);
    const again = await agent.client.start(spec);
    assert.equal(again.state, "running");
    await agent.client.forceOff(spec.id);
  });

  step("the event stream reports each state change, in order", async () => {
    const seen: string[] = [];
    let opened = () => {};
    const open = new Promise<void>((resolve) => (opened = resolve));
    const stream = agent.client.events((status) => {
      if (status.id === spec.id) seen.push(status.state);
    }, opened);
    await within("the agent to accept the event stream", open, 5000);
    await agent.client.start(spec);
    await agent.client.pause(spec.id);
    await agent.client.resume(spec.id);
    await agent.client.forceOff(spec.id);
    await waitFor("the stopped event", () => seen.at(-1) === "stopped", 5000, 20);
    stream.close();
    assert.deepEqual(seen, ["starting", "running", "paused", "running", "stopped"]);
  });

  step("force off kills a QEMU that no longer answers QMP", async () => {
    const { pid } = await agent.client.start(spec);
    process.kill(pid!, "SIGSTOP"); // frozen: QMP `quit` gets no answer
    const t0 = Date.now();
    const status = await agent.client.forceOff(spec.id);
    assert.equal(status.state, "stopped");
    assert.ok(Date.now() - t0 < 15_000, "SIGKILL followed the grace period");
    assert.ok(processGone(pid!));
    assert.deepEqual(socketsLeft(), []);
  });

  step("requests that do not match the API are refused with a clear error", async () => {
    await assert.rejects(
      agent.client.start({ ...spec, name: "bad name; rm -rf /" }),
      (err: GuesthouseError) => err.code === "invalid-input" && /guest name/i.test(err.message),
    );
    await assert.rejects(
      agent.client.start({ ...spec, cdroms: [{ iso: "../../etc/passwd.iso" }] }),
      (err: GuesthouseError) => err.code === "invalid-input",
    );
    await assert.rejects(agent.client.guest("../etc"), (err: GuesthouseError) => err.code === "invalid-input");
    await assert.rejects(agent.client.shutdown(spec.id), (err: GuesthouseError) => err.code === "conflict");
  });

  step("a deleted guest's state folder is removed and it cannot be started again", async () => {
    await agent.client.forget(spec.id);
    assert.equal(fs.existsSync(stateDir()), false);
    await assert.rejects(agent.client.start(spec), (err: GuesthouseError) => err.code === "not-found");
    assert.deepEqual(qemuPidsUnder(stateDir()), []);
  });
});
