/**
 * The accelerator probe (server/agent/kvm-probe.ts) and the verdict kept per QEMU and
 * kernel (server/agent/host-qemu.ts): the test guest's bytes are what its source says
 * and really run to their end (under TCG, which every host has); each way a host's
 * KVM fails is read into plain words; a probe that hangs is killed at its time limit;
 * and a verdict is reused only for the same QEMU binary and kernel.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync, type SpawnSyncReturns } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { checkHostQemu, QemuMissingError, type RememberedVerdict } from "../../server/agent/host-qemu";
import { bootSector, classifyProbe, PROBE_PASSED_STATUS, QemuNotStartedError, runKvmProbe, type ProbeResult, type ProbeRun } from "../../server/agent/kvm-probe";
import { kvmProbeArgs } from "../../server/qemu/args";
import { FAKE_SLEEPS, fakeQemu } from "../helpers/fake-qemu";

/** Pids of `sleep <seconds>` processes: what a fake QEMU hangs in. */
function sleepersLeft(seconds: string): number[] {
  return fs
    .readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, "utf8") === `sleep\0${seconds}\0` && !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${p}/stat`, "utf8"));
      } catch {
        return false;
      }
    })
    .map(Number);
}

const run = (patch: Partial<ProbeRun>): ProbeRun => ({ status: null, signal: null, serial: "", stderr: "", timedOut: false, ms: 100, timeLimitMs: 10_000, ...patch });
const failed = (result: ProbeResult) => {
  assert.equal(result.ok, false, `expected a failure, got ${JSON.stringify(result)}`);
  return result as Extract<ProbeResult, { ok: false }>;
};

describe("the probe's test guest", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-probe-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("its boot sector is kvm-probe.S assembled (GNU as and ld), byte for byte", () => {
    execFileSync("as", ["--32", "-o", path.join(dir, "probe.o"), "server/agent/kvm-probe.S"]);
    execFileSync("ld", ["-m", "elf_i386", "-Ttext=0x7c00", "--oformat", "binary", "-o", path.join(dir, "probe.bin"), path.join(dir, "probe.o")]);
    const assembled = fs.readFileSync(path.join(dir, "probe.bin"));
    assert.equal(assembled.length, 512);
    assert.ok(bootSector().equals(assembled), "the bytes in kvm-probe.ts differ from kvm-probe.S: rebuild them as the .S file says");
    assert.deepEqual([...bootSector().subarray(510)], [0x55, 0xaa], "a boot signature SeaBIOS accepts");
  });

  test("its command line hands the disk over as child fd 3 (fd set 1, read-only) and opens it only as /dev/fdset/1", () => {
    const args = kvmProbeArgs("/tmp/x,y/boot.img");
    assert.deepEqual(args.slice(-4), ["-add-fd", "fd=3,set=1,opaque=read-only:/tmp/x,,y/boot.img", "-drive", "file=/dev/fdset/1,format=raw,if=virtio,readonly=on"]);
    assert.equal(args.filter((a) => a === "-add-fd").length, 1);
    assert.ok(!args.some((a) => a.includes("boot.img") && !a.startsWith("fd=3,set=1,opaque=")), "the image's path is in the opaque only");
  });

  test("under TCG it walks real, protected, unreal and long mode and ends QEMU with the pass status", () => {
    // The probe's own command line, with the accelerator TCG has instead of KVM.
    const image = path.join(dir, "boot.img");
    fs.writeFileSync(image, bootSector());
    fs.truncateSync(image, 1 << 20);
    const args = kvmProbeArgs(image).map((a) => (a === "q35,accel=kvm" ? "q35,accel=tcg" : a === "host" ? "max" : a));
    assert.ok(args.includes("q35,accel=tcg") && args.includes("max"), "the accelerator and CPU were swapped");
    // The disk is a descriptor, child fd 3, opened read-only as runKvmProbe opens it.
    const disk = fs.openSync(image, "r");
    let qemu: SpawnSyncReturns<string>;
    try {
      qemu = spawnSync("qemu-system-x86_64", args, { input: "", encoding: "utf8", timeout: 30_000, stdio: ["pipe", "pipe", "pipe", disk] });
    } finally {
      fs.closeSync(disk);
    }
    assert.equal(qemu.stdout, "RPUL\n", `what the guest printed (QEMU said: ${qemu.stderr})`);
    assert.equal(qemu.status, PROBE_PASSED_STATUS);
  });
});

describe("reading the probe's run", () => {
  test("the pass status with every step printed is a working KVM", () => {
    const result = classifyProbe(run({ status: PROBE_PASSED_STATUS, serial: "RPUL\n", ms: 180 }));
    assert.equal(result.ok, true);
    assert.match(result.reason, /KVM ran the test guest.* in 0\.18 s/);
  });

  test("the pass status without every step is not a working KVM", () => {
    assert.equal(classifyProbe(run({ status: PROBE_PASSED_STATUS, serial: "RP" })).ok, false);
  });

  test("an emulation failure names the step it stopped in and those it passed, and is worth remembering", () => {
    const result = failed(classifyProbe(run({ signal: "SIGKILL", serial: "R", stderr: "KVM internal error. Suberror: 1\nextra data[0]: 0x1\nemulation failure\nEAX=0" })));
    assert.equal(result.reason, "KVM stopped with an emulation failure while running test code (in 32-bit protected mode, after real mode)");
    assert.equal(result.lasting, true);
  });

  test("another KVM internal error is named by its suberror", () => {
    const result = failed(classifyProbe(run({ signal: "SIGKILL", serial: "RP", stderr: "KVM internal error. Suberror: 3\n" })));
    assert.match(result.reason, /^KVM stopped with an internal error \(Suberror: 3\) while running test code \(in real mode with 4 GiB segments/);
  });

  test("QEMU aborting at start is named with its own words", () => {
    const stderr = "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed.\n";
    const result = failed(classifyProbe(run({ signal: "SIGABRT", stderr })));
    assert.equal(result.reason, "QEMU cannot use /dev/kvm: it aborted at start (failed to set MSR 0x10a to 0x69)");
    assert.equal(result.lasting, true);
  });

  test("a missing or forbidden /dev/kvm is said plainly and not remembered (a module may load later)", () => {
    const missing = failed(classifyProbe(run({ status: 1, stderr: "Could not access KVM kernel module: No such file or directory\nqemu-system-x86_64: -machine q35,accel=kvm: failed to initialize kvm: No such file or directory\n" })));
    assert.match(missing.reason, /^\/dev\/kvm is missing/);
    assert.equal(missing.lasting, false);
    const forbidden = failed(classifyProbe(run({ status: 1, stderr: "Could not access KVM kernel module: Permission denied\n" })));
    assert.match(forbidden.reason, /^\/dev\/kvm is not accessible to QEMU's user \(permission denied\): give the kvm group read and write on it/);
    assert.equal(forbidden.lasting, false);
  });

  test("a time-out names where the guest got to, and is not remembered (the host may only have been busy)", () => {
    const result = failed(classifyProbe(run({ timedOut: true, signal: "SIGKILL", serial: "RP", timeLimitMs: 10_000 })));
    assert.equal(result.reason, "KVM did not finish the test code within 10 s (it stopped in real mode with 4 GiB segments, after real mode, 32-bit protected mode)");
    assert.equal(result.lasting, false);
    assert.match(failed(classifyProbe(run({ timedOut: true, signal: "SIGKILL" }))).reason, /it stopped in the firmware or real mode\)$/);
  });

  test("a warning about a CPU feature is not taken for the reason", () => {
    const stderr = "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]\nqemu-system-x86_64: kvm_init_vcpu failed: Invalid argument\n";
    assert.equal(failed(classifyProbe(run({ status: 1, stderr }))).reason, "QEMU cannot use /dev/kvm: it exited with status 1 (kvm_init_vcpu failed: Invalid argument)");
  });
});

describe("running the probe", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-probe-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fake = (name: string, kvm: Parameters<typeof fakeQemu>[1]) => path.join(fakeQemu(path.join(dir, name), kvm), "qemu-system-x86_64");

  test("a KVM that stops the test guest with an emulation failure is caught at once, not at the time limit", async () => {
    const started = Date.now();
    const result = failed(await runKvmProbe({ qemu: fake("emulation", "emulation-failure"), timeLimitMs: 20_000 }));
    assert.equal(result.reason, "KVM stopped with an emulation failure while running test code (in 32-bit protected mode, after real mode)");
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    assert.deepEqual(sleepersLeft(FAKE_SLEEPS["emulation-failure"]), [], "the paused QEMU was killed");
  });

  test("a probe that hangs is killed at its time limit and counts as a failure", async () => {
    for (const kind of ["hang", "hang-wrapped"] as const) {
      const started = Date.now();
      const result = failed(await runKvmProbe({ qemu: fake(kind, kind), timeLimitMs: 1_500 }));
      assert.match(result.reason, /^KVM did not finish the test code within 2 s/, kind);
      const took = Date.now() - started;
      assert.ok(took >= 1_500 && took < 5_000, `${kind}: waited for the time limit and no longer (${took} ms)`);
      assert.equal(result.lasting, false);
      assert.deepEqual(sleepersLeft(FAKE_SLEEPS[kind]), [], `${kind}: nothing of the probe's QEMU is left running`);
    }
  });

  test("a QEMU that aborts is a failure with its words; one that passes is a working KVM", async () => {
    assert.match(failed(await runKvmProbe({ qemu: fake("abort", "abort") })).reason, /^QEMU cannot use \/dev\/kvm: it aborted at start \(failed to set MSR 0x10a/);
    assert.equal((await runKvmProbe({ qemu: fake("works", "works") })).ok, true);
  });

  test("it runs as QEMU's user, as guests do: that user's uid and gid, no other groups, the disk as fd 3", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("only root can run a program as another user; untested here");
    fs.chmodSync(dir, 0o711);
    const bin = path.join(dir, "whoami");
    fs.mkdirSync(bin);
    // Says who it runs as and what fd 3 is (QEMU's words come from stderr), then fails.
    fs.writeFileSync(
      path.join(bin, "qemu-system-x86_64"),
      '#!/bin/sh\necho "uid $(id -u) gid $(id -g) groups $(id -G) fd3 $(readlink /proc/self/fd/3 | sed s,.*/,,)" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const result = failed(await runKvmProbe({ qemu: path.join(bin, "qemu-system-x86_64"), identity: { uid: 4000002, gid: 4000003 } }));
    assert.equal(result.reason, "QEMU cannot use /dev/kvm: it exited with status 1 (uid 4000002 gid 4000003 groups 4000003 fd3 boot.img)");
  });

  test("a QEMU that cannot be started at all is an error of its own, not a verdict", async () => {
    await assert.rejects(runKvmProbe({ qemu: path.join(dir, "no-such-qemu") }), (err: unknown) => err instanceof QemuNotStartedError && /was not found/.test(err.message));
  });

  test("no file is left behind", async () => {
    const before = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith("guesthouse-kvm-probe-")).length;
    await runKvmProbe({ qemu: fake("works2", "works") });
    assert.equal(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith("guesthouse-kvm-probe-")).length, before);
  });
});

describe("the verdict, kept per QEMU binary and kernel", () => {
  let dir: string;
  /** A QEMU binary of its own (the fake passes everything but the probe on to the real one). */
  let bin: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-verdict-"));
    bin = path.join(fakeQemu(path.join(dir, "bin"), "works"), "qemu-system-x86_64");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A probe that counts its runs and answers `result`. */
  const countingProbe = (result: ProbeResult) => {
    const probe = async () => {
      probe.runs++;
      return result;
    };
    probe.runs = 0;
    return probe;
  };
  const qemu = () => bin;

  test("a lasting verdict is kept and reused: the second start does not probe", async () => {
    const cacheFile = path.join(dir, "a.json");
    const probe = countingProbe({ ok: false, reason: "KVM stopped with an emulation failure while running test code (in 32-bit protected mode)", lasting: true, ms: 10 });
    const first = await checkHostQemu({ mode: "auto", cacheFile, qemu: qemu(), probe });
    assert.deepEqual([first.accelerator, first.acceleratorReason, probe.runs], ["tcg", "KVM stopped with an emulation failure while running test code (in 32-bit protected mode)", 1]);
    assert.match(first.version, /^\d+\.\d+/, "the version is the real QEMU's (the fake passes --version on)");
    const kept = JSON.parse(fs.readFileSync(cacheFile, "utf8")) as RememberedVerdict;
    assert.equal(kept.accelerator, "tcg");
    const second = await checkHostQemu({ mode: "auto", cacheFile, qemu: qemu(), probe });
    assert.deepEqual([second.accelerator, second.acceleratorReason, probe.runs], [first.accelerator, first.acceleratorReason, 1]);
  });

  test("another QEMU binary (here: the same file changed) probes again", async () => {
    const cacheFile = path.join(dir, "b.json");
    const probe = countingProbe({ ok: true, reason: "KVM ran the test guest through real, protected and long mode in 0.20 s", ms: 200 });
    await checkHostQemu({ mode: "auto", cacheFile, qemu: qemu(), probe });
    fs.appendFileSync(qemu(), "# an upgrade\n");
    const again = await checkHostQemu({ mode: "auto", cacheFile, qemu: qemu(), probe });
    assert.equal(probe.runs, 2);
    assert.equal(again.accelerator, "kvm");
  });

  test("a verdict that may change by itself (a time-out) is not kept, and one kept for another QEMU is dropped", async () => {
    const cacheFile = path.join(dir, "c.json");
    fs.writeFileSync(cacheFile, JSON.stringify({ key: "another QEMU and kernel", accelerator: "kvm", reason: "KVM ran the test guest", checkedAt: "2026-01-01T00:00:00.000Z" }));
    const probe = countingProbe({ ok: false, reason: "KVM did not finish the test code within 10 s", lasting: false, ms: 10_000 });
    await checkHostQemu({ mode: "auto", cacheFile, qemu: qemu(), probe });
    await checkHostQemu({ mode: "auto", cacheFile, qemu: qemu(), probe });
    assert.equal(probe.runs, 2);
    assert.equal(fs.existsSync(cacheFile), false);
  });

  test("a damaged verdict file is ignored and replaced", async () => {
    const cacheFile = path.join(dir, "d.json");
    fs.writeFileSync(cacheFile, "{ not json");
    const probe = countingProbe({ ok: true, reason: "KVM ran the test guest through real, protected and long mode in 0.20 s", ms: 200 });
    assert.equal((await checkHostQemu({ mode: "auto", cacheFile, qemu: qemu(), probe })).accelerator, "kvm");
    assert.equal((JSON.parse(fs.readFileSync(cacheFile, "utf8")) as RememberedVerdict).accelerator, "kvm");
  });

  test("GUESTHOUSE_ACCEL=kvm or tcg is taken as given, without a probe", async () => {
    const probe = countingProbe({ ok: true, reason: "", ms: 0 });
    for (const mode of ["kvm", "tcg"] as const) {
      const result = await checkHostQemu({ mode, cacheFile: path.join(dir, "e.json"), qemu: qemu(), probe });
      assert.deepEqual([result.accelerator, result.acceleratorReason], [mode, "set by GUESTHOUSE_ACCEL"]);
    }
    assert.equal(probe.runs, 0);
  });

  test("a missing QEMU is a clear error naming what to install", async () => {
    await assert.rejects(
      checkHostQemu({ mode: "tcg", cacheFile: path.join(dir, "f.json"), qemu: path.join(dir, "nowhere", "qemu-system-x86_64") }),
      (err: unknown) => err instanceof QemuMissingError && /Install Debian's qemu-system-x86 package/.test(err.message),
    );
  });
});
