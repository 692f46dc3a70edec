/**
 * A stand-in `qemu-system-x86_64` for tests of the accelerator probe: a script put first
 * on PATH that plays one way a host's KVM can fail when QEMU is started as the probe
 * (its command line has the isa-debug-exit device), and runs the real QEMU for
 * everything else, so guests still boot. It stands in for the host's KVM only.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** How the probe's QEMU behaves. */
export type FakeKvm =
  /** As on nested hosts whose KVM cannot emulate what a boot loader runs: the dump, then a paused vCPU, forever. */
  | "emulation-failure"
  /** As on hosts where QEMU aborts setting up the vCPU (seen: "failed to set MSR 0x10a"). */
  | "abort"
  /** Prints nothing and never ends. */
  | "hang"
  /** The same behind a wrapper that does not exec: the shell waits on a child holding its pipes. */
  | "hang-wrapped"
  /** A working KVM: the test guest's letters on the serial port, then the exit device's status. */
  | "works";

/** What QEMU 7.2 printed on a host of this kind when KVM stopped ISOLINUX (abridged). */
const EMULATION_FAILURE = `KVM internal error. Suberror: 1
extra data[0]: 0x0000000000000001
extra data[1]: 0x5657559090c3cf0f
emulation failure
EAX=00000042 EBX=0000000f ECX=00000000 EDX=01427a82
EIP=000089fc EFL=00000006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
Code=eb de ff 0d d8 3a 00 00 75 06 ff 15 84 8e 00 00 61 83 c4 04 <cf> c3 90 90 55 57 56 53
`;

/** The sleeps the fakes hang in, each its own length so a test can look for what is left of it. */
export const FAKE_SLEEPS = { "emulation-failure": "601", hang: "602", "hang-wrapped": "603" } as const;

const PROBE: Record<FakeKvm, string> = {
  "emulation-failure": `printf 'R' ; printf '%s' '${EMULATION_FAILURE}' >&2 ; exec sleep ${FAKE_SLEEPS["emulation-failure"]}`,
  abort: `echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2 ; kill -ABRT $$`,
  hang: `exec sleep ${FAKE_SLEEPS.hang}`,
  "hang-wrapped": `sleep ${FAKE_SLEEPS["hang-wrapped"]} ; exit 0`,
  works: "printf 'RPUL\\n' ; exit 99",
};

/**
 * Not a fake: the real QEMU with `-cpu host` told to hide one CPU feature from the guest.
 * On this project's machines `-cpu host` makes QEMU abort ("failed to set MSR 0x10a", the
 * arch-capabilities MSR); without that feature it starts, and KVM then stops real guest
 * code with the emulation failure issue 11 reported. Returns `dir`, to put first on PATH.
 */
export function qemuWithoutCpuFeature(dir: string, feature: string): string {
  const real = execFileSync("sh", ["-c", "command -v qemu-system-x86_64"], { encoding: "utf8" }).trim();
  binFolder(dir);
  const script = `#!/bin/bash
args=()
for a in "$@"; do [ "$a" = host ] && a="host,-${feature}"; args+=("$a"); done
exec ${real} "\${args[@]}"
`;
  fs.writeFileSync(path.join(dir, "qemu-system-x86_64"), script, { mode: 0o755 });
  return dir;
}

/**
 * Makes `dir` for a stand-in QEMU: the agent runs QEMU (and its probe) as users of their
 * own, who must pass through the caller's temporary folder to find it on PATH.
 */
function binFolder(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.chmodSync(path.dirname(dir), 0o711);
}

/** Writes the fake into `dir` (which the caller puts first on PATH) and returns `dir`. */
export function fakeQemu(dir: string, kvm: FakeKvm): string {
  const real = execFileSync("sh", ["-c", "command -v qemu-system-x86_64"], { encoding: "utf8" }).trim();
  binFolder(dir);
  const script = `#!/bin/sh
# The accelerator probe (server/agent/kvm-probe.ts) is the only QEMU with an isa-debug-exit device.
case " $* " in
  *isa-debug-exit*) ${PROBE[kvm]} ;;
esac
exec ${real} "$@"
`;
  fs.writeFileSync(path.join(dir, "qemu-system-x86_64"), script, { mode: 0o755 });
  return dir;
}
