/**
 * What the accelerator probe costs at agent start (issue 11: "well under a second on
 * KVM"), beside what the probe it replaced cost, in the same run:
 *
 * - probe: runKvmProbe() as the agent runs it (the test guest under KVM), to its verdict;
 * - paused start: the old probe, a paused QEMU under KVM told to quit over QMP, which
 *   never ran a guest instruction;
 * - test guest under TCG: the probe's own command line with TCG instead of KVM, to the
 *   guest's exit: what SeaBIOS and the boot sector cost where no KVM is involved.
 *
 * Where KVM works, the first line is the number the target is about. Where it does not
 * (this project's machines), it is the time to the TCG verdict.
 *
 *   node --import tsx bench/kvm-probe.ts        (BENCH_ROUNDS, default 7)
 *
 * BENCH_QEMU names another QEMU binary (or a wrapper script) for all three, e.g. one that
 * adds `-arch-capabilities` to `-cpu host`, which on this project's machines turns QEMU's
 * abort into the emulation failure other hosts of the kind show.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { bootSector, PROBE_PASSED_STATUS, runKvmProbe } from "../server/agent/kvm-probe";
import { childEnv } from "../server/agent/process";
import { cpuModel, kvmProbeArgs, QEMU_BINARY } from "../server/qemu/args";
import { machineLine, median, ms, verdict } from "./stats";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const QEMU = process.env.BENCH_QEMU ?? QEMU_BINARY;
const TARGET_MS = 1000;

function timed(run: () => void): number {
  const started = process.hrtime.bigint();
  run();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main(): Promise<void> {
  console.log(machineLine());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-bench-probe-"));
  try {
    const image = path.join(dir, "boot.img");
    fs.writeFileSync(image, bootSector());
    fs.truncateSync(image, 1 << 20);
    const tcgArgs = kvmProbeArgs(image).map((a) => (a === "q35,accel=kvm" ? "q35,accel=tcg" : a === cpuModel("kvm") ? cpuModel("tcg") : a));
    const pausedArgs = ["-machine", "q35,accel=kvm", "-cpu", cpuModel("kvm"), "-m", "16", "-nodefaults", "-no-user-config", "-display", "none", "-S", "-qmp", "stdio"];

    const probe: number[] = [];
    const paused: number[] = [];
    const tcg: number[] = [];
    let reason = "";
    let kvmWorks = false;
    for (let round = 0; round < ROUNDS; round++) {
      const started = process.hrtime.bigint();
      const result = await runKvmProbe({ qemu: QEMU });
      probe.push(Number(process.hrtime.bigint() - started) / 1e6);
      reason = result.reason;
      kvmWorks = result.ok;
      paused.push(timed(() => spawnSync(QEMU, pausedArgs, { input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', env: childEnv(), timeout: 20_000 })));
      tcg.push(
        timed(() => {
          const run = spawnSync(QEMU, tcgArgs, { input: "", env: childEnv(), encoding: "utf8", timeout: 20_000 });
          if (run.status !== PROBE_PASSED_STATUS) throw new Error(`the test guest did not end under TCG: ${run.stderr}`);
        }),
      );
    }
    console.log(`rounds: ${ROUNDS}; the probe's verdict here: ${kvmWorks ? "kvm" : "tcg"} (${reason})`);
    console.log(`probe (test guest under KVM, to its verdict)  median ${ms(median(probe))}  min ${ms(Math.min(...probe))}  max ${ms(Math.max(...probe))}`);
    console.log(`paused start and quit (the old probe)          median ${ms(median(paused))}  min ${ms(Math.min(...paused))}  max ${ms(Math.max(...paused))}`);
    console.log(`test guest under TCG (no KVM involved)         median ${ms(median(tcg))}  min ${ms(Math.min(...tcg))}  max ${ms(Math.max(...tcg))}`);
    console.log(`ratio probe / old probe: ${(median(probe) / median(paused)).toFixed(2)}`);
    if (kvmWorks) {
      console.log(`target: the probe under ${TARGET_MS} ms on KVM: ${ms(median(probe))} ${verdict(median(probe) < TARGET_MS)}`);
    } else {
      console.log(`target: the probe under ${TARGET_MS} ms on KVM: not measurable here (KVM does not run guest code on this host); the TCG verdict took ${ms(median(probe))}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
