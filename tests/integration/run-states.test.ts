/**
 * Guests that QEMU halts by itself, against real QEMU: a kernel panic (pvpanic), a
 * disk whose storage folder fills up (io-error), a guest that suspends itself, and, on
 * hosts whose KVM can be made to fail that way, a KVM internal error. Each
 * must show as what it is, never as running, with the end of QEMU's log and the
 * actions the state table allows; and an agent restarted meanwhile must find them so.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { runKvmProbe } from "../../server/agent/kvm-probe";
import { GuesthouseError } from "../../server/domain/errors";
import type { GuestState, GuestStatus } from "../../server/domain/types";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { qemuWithoutCpuFeature } from "../helpers/fake-qemu";
import { BOOT_TIMEOUT_MS, SerialShell } from "../helpers/serial-shell";
import { mountTmpfs, type TestTmpfs } from "../helpers/tmpfs";
import { testDisk, testSpec } from "../helpers/specs";

const MiB = 2 ** 20;

/** The agent's status of the guest once it is in `state`. */
function waitForState(agent: TestAgent, id: string, state: GuestState, timeoutMs = 60_000): Promise<GuestStatus> {
  return waitFor(`guest ${id} to be ${state}`, async () => {
    const status = await agent.client.guest(id);
    return status.state === state ? status : null;
  }, timeoutMs);
}

describe("guests QEMU halts, with real QEMU", () => {
  let agent: TestAgent;
  const shells: SerialShell[] = [];
  const stateOf = async (id: string) => (await agent.client.guest(id)).state;
  const shell = async (id: string) => {
    const s = await SerialShell.open(agent, id);
    shells.push(s);
    return s;
  };
  const refused = (err: unknown) => err instanceof GuesthouseError && err.code === "conflict";

  before(async () => {
    agent = await startTestAgent();
  });
  after(async () => {
    for (const s of shells) s.close();
    await agent?.cleanup();
  });

  test("a guest whose kernel panics is guest-panicked, not running; it refuses what needs running vCPUs, and a reset runs it again", async () => {
    const spec = testSpec("guestpanic001");
    await agent.client.start(spec);
    const console1 = await shell(spec.id);
    console1.send("echo c > /proc/sysrq-trigger");
    const panicked = await waitForState(agent, spec.id, "guest-panicked");
    assert.match(console1.log(), /Kernel panic - not syncing: sysrq triggered crash/, "the guest really panicked");
    const qemuLog = fs.readFileSync(path.join(agent.dataDir, "guests", spec.id, "qemu.log"), "utf8");
    assert.equal(panicked.logTail, qemuLog.slice(-4096), "the end of QEMU's log comes with the state");
    for (const refusedAction of [() => agent.client.pause(spec.id), () => agent.client.shutdown(spec.id), () => agent.client.resume(spec.id)]) {
      await assert.rejects(refusedAction(), refused);
    }
    assert.equal(await stateOf(spec.id), "guest-panicked", "a refused action changes nothing");

    const boots = () => console1.log().split("GUESTHOUSE-DEMO-READY").length - 1;
    const bootsBefore = boots();
    const reset = await agent.client.reset(spec.id);
    assert.equal(reset.state, "running");
    assert.equal(reset.pid, panicked.pid, "a reset keeps the QEMU process");
    await waitFor("the guest to boot again", () => boots() > bootsBefore, BOOT_TIMEOUT_MS);
    assert.equal(await console1.run("echo alive-$((40+2))"), "alive-42\n", "the guest booted again and runs commands");
    await agent.client.forceOff(spec.id);
  });

  test("start again: a panicked guest's QEMU is forced off and a new one starts", async () => {
    const spec = testSpec("guestpanic002");
    const first = await agent.client.start(spec);
    (await shell(spec.id)).send("echo c > /proc/sysrq-trigger");
    await waitForState(agent, spec.id, "guest-panicked");
    const again = await agent.client.restart(spec);
    assert.equal(again.state, "running");
    assert.notEqual(again.pid, first.pid, "a new QEMU process");
    await agent.client.forceOff(spec.id);
  });

  test("restart is refused for a guest QEMU has not halted", async () => {
    const spec = testSpec("guestrestart1");
    await agent.client.start(spec);
    await assert.rejects(agent.client.restart(spec), refused);
    await agent.client.forceOff(spec.id);
  });

  test("a guest that suspends itself is halted, with QEMU's word for it, and resume wakes it", async () => {
    const spec = testSpec("guestsleep001");
    await agent.client.start(spec);
    const console1 = await shell(spec.id);
    console1.send("echo mem > /sys/power/state; echo woke-$((1+1))");
    const asleep = await waitForState(agent, spec.id, "halted");
    assert.match(asleep.haltReason ?? "", /suspended/);
    const awake = await agent.client.resume(spec.id);
    assert.equal(awake.state, "running");
    await waitFor("the guest to go on after waking", () => console1.log().includes("woke-2"), 60_000);
    await agent.client.forceOff(spec.id);
  });

  test("an agent restarted meanwhile finds a panicked guest panicked, and a paused one paused", async () => {
    const panicking = testSpec("guestadopt001");
    const pausing = testSpec("guestadopt002");
    await agent.client.start(panicking);
    await agent.client.start(pausing);
    (await shell(panicking.id)).send("echo c > /proc/sysrq-trigger");
    await waitForState(agent, panicking.id, "guest-panicked");
    await agent.client.pause(pausing.id);

    await agent.kill();
    await agent.restart();
    const adopted = await agent.client.guest(panicking.id);
    assert.equal(adopted.state, "guest-panicked", "query-status on adoption, not a guess");
    assert.ok(adopted.pid, "the same QEMU, adopted");
    assert.equal(await stateOf(pausing.id), "paused", "a pause asked for before the restart stays a pause, not a halt");
    assert.equal((await agent.client.resume(pausing.id)).state, "running");
    await agent.client.forceOff(panicking.id);
    await agent.client.forceOff(pausing.id);
  });
});

describe("a guest whose disk's storage folder fills up, with real QEMU", () => {
  let agent: TestAgent | undefined;
  let small: TestTmpfs;
  let shellOnGuest: SerialShell | undefined;

  before(async () => {
    small = mountTmpfs("8m");
    if (small.mounted) agent = await startTestAgent({ GUESTHOUSE_STORAGE: `small=${small.dir}` });
  });
  after(async () => {
    shellOnGuest?.close();
    await agent?.cleanup();
    small.cleanup();
  });

  test("QEMU pauses it on the write that finds no space (io-error, the disk named); once space is freed, resume retries the write and the guest goes on", async (t) => {
    if (!agent) return t.skip("cannot mount a tmpfs here (needs root): the full-folder case is untested on this machine");
    await agent.client.createImage({ pool: "small", file: "grow.qcow2", format: "qcow2", bytes: 64 * MiB, volume: "volgrow00001" });
    const spec = testSpec("guestfull0001", { disks: [testDisk("volgrow00001", "qcow2", { pool: "small", file: "grow.qcow2" })] });
    await agent.client.start(spec);
    shellOnGuest = await SerialShell.open(agent, spec.id);
    // 32 MiB of writes into a qcow2 on an 8 MiB folder: its clusters cannot all be allocated.
    shellOnGuest.send("dd if=/dev/urandom of=/dev/vda bs=1M count=32 oflag=direct 2>&1 | tail -n 1; echo wrote-$((30+2))");
    let halted: GuestStatus | undefined;
    await waitFor("the guest to be halted on the disk error", async () => (halted = await agent!.client.guest(spec.id)).state === "io-error", BOOT_TIMEOUT_MS);
    assert.match(halted!.haltReason ?? "", /write on disk0 failed: no space left/);
    assert.equal(shellOnGuest.log().includes("wrote-32"), false, "the guest's write did not finish meanwhile");

    small.resize("128m");
    const resumed = await agent.client.resume(spec.id);
    assert.equal(resumed.state, "running");
    assert.equal(resumed.haltReason ?? null, null, "the reason goes with the halt");
    await waitFor("the guest's write to finish after the retry", () => shellOnGuest!.log().includes("wrote-32"), 120_000);
    assert.doesNotMatch(shellOnGuest.log(), /Input\/output error|No space left/, "the guest never saw an error");
    await agent.client.forceOff(spec.id);
  });
});

describe("a guest on a KVM that fails on guest code, with real QEMU", () => {
  let dir: string;
  let agent: TestAgent | undefined;
  let unavailable = "";

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-kvmfail-"));
    const bin = qemuWithoutCpuFeature(path.join(dir, "bin"), "arch-capabilities");
    // Only where this host's KVM really fails that way: the probe, with the same QEMU, says so.
    const probe = await runKvmProbe({ qemu: path.join(bin, "qemu-system-x86_64") });
    if (probe.ok || !/emulation failure/.test(probe.reason)) {
      unavailable = `this host's KVM does not stop guest code with an emulation failure (the probe: ${probe.reason})`;
      return;
    }
    agent = await startTestAgent({ PATH: `${bin}:${process.env.PATH}`, GUESTHOUSE_ACCEL: "kvm" });
  });
  after(async () => {
    await agent?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("KVM stops the demo guest's boot loader: the guest turns internal-error with QEMU's register dump; resume is refused, reset and start again meet the same, force off ends it", async (t) => {
    if (!agent) return t.skip(unavailable);
    const a = agent;
    const spec = testSpec("guestkvmfail1");
    const started = await a.client.start(spec);
    assert.ok(started.argv!.includes("q35,accel=kvm,graphics=off") && started.argv!.includes("host"), "forced onto KVM");
    const halted = await waitForState(a, spec.id, "internal-error");
    assert.match(halted.logTail ?? "", /KVM internal error\. Suberror: 1[\s\S]*emulation failure/, "QEMU's own words, with its dump");
    await assert.rejects(a.client.resume(spec.id), (err: unknown) => err instanceof GuesthouseError && err.code === "conflict", "QEMU cannot continue without a reset");

    await a.client.reset(spec.id);
    await waitForState(a, spec.id, "internal-error");
    const again = await a.client.restart(spec);
    assert.notEqual(again.pid, started.pid, "a new QEMU");
    await waitForState(a, spec.id, "internal-error");
    assert.equal((await a.client.forceOff(spec.id)).state, "stopped");
  });
});
