/**
 * A guest's state follows QEMU's own run state. Every time QEMU stops or continues the
 * vCPUs (QMP STOP, RESUME, GUEST_PANICKED, WATCHDOG, SUSPEND, WAKEUP) `query-status`
 * says why, so a guest QEMU has halted (a KVM internal error, a panic, a disk error) is
 * shown as such, never as running; a disk error's cause and the end of QEMU's log go
 * with it. The supervisor (server/agent/supervisor.ts) hands each QMP event here.
 */
import type { GuestState } from "../domain/types";
import { canTransition, isHalted, stateOfRunState } from "../domain/types";
import type { QmpEvent } from "../qemu/qmp";
import { logTail } from "./files";
import type { SupervisedGuest } from "./guest-state";

/** What the supervisor lends the run-state code. */
export interface RunStateHooks {
  /** The guest is still the one the supervisor keeps under its id (not a stopped one's leftover). */
  isCurrent(guest: SupervisedGuest): boolean;
  transition(guest: SupervisedGuest, next: GuestState): void;
  /** The guest let go of a disk's device: close what the agent opened for it. */
  finishUnplug(guest: SupervisedGuest, device: string): Promise<void>;
}

export function onQmpEvent(guest: SupervisedGuest, event: QmpEvent, hooks: RunStateHooks): void {
  switch (event.event) {
    case "SHUTDOWN":
      guest.exitExpected = true;
      break;
    case "BLOCK_IO_ERROR":
      // Followed by STOP when the drive's error policy stops the VM (ENOSPC by default).
      if (event.data?.action === "stop") {
        guest.setLastIoError(ioErrorReason(event.data)).catch((err) => console.error(`agent: guest ${guest.id}: keeping its disk error:`, err));
      }
      break;
    // QEMU stopped or continued the vCPUs, for whatever reason: query-status says which.
    case "STOP":
    case "RESUME":
    case "GUEST_PANICKED":
    case "WATCHDOG":
    case "SUSPEND":
    case "WAKEUP":
      checkRunState(guest, hooks).catch((err) => {
        // A QEMU on its way out (a power-off, a force off) stops the vCPUs and then closes QMP.
        if (guest.exitExpected || !guest.qmp) return;
        console.error(`agent: guest ${guest.id}: reading its run state after ${event.event}:`, err);
      });
      break;
    case "DEVICE_DELETED": {
      // The guest let go of a device: an unplug the agent asked for, or one the guest did itself.
      const device = event.data?.device;
      if (typeof device === "string" && (Object.values(guest.disks.disks).some((d) => d.device === device) || guest.nics.nics.some((n) => n.device === device))) {
        guest.diskOps.run(() => hooks.finishUnplug(guest, device)).catch((err) =>
          console.error(`agent: guest ${guest.id}: cleaning up after unplugging ${device} failed:`, err),
        );
      }
      break;
    }
  }
}

/**
 * Asks QEMU for its run state and shows it as the guest's state: running, paused by a
 * person, or halted by QEMU itself (an internal error, a panic, a disk error, …), with
 * the end of QEMU's log then. Queries take turns, so their answers apply in order, and
 * a burst of events (a guest suspending and waking in a loop) asks once more, not once
 * per event: the one question still waiting its turn reads the latest state anyway.
 */
export function checkRunState(guest: SupervisedGuest, hooks: RunStateHooks): Promise<void> {
  if (guest.runStateCheckWaiting) return guest.runStateCheckWaiting;
  const check = guest.runStateChecks.run(async () => {
    guest.runStateCheckWaiting = null;
    const qmp = guest.qmp;
    if (!qmp || !hooks.isCurrent(guest)) return;
    const { running, status } = await qmp.execute<{ running: boolean; status: string }>("query-status");
    guest.runState = status;
    // A passing state (a snapshot being saved, a migration) leaves the guest as it is; a
    // guest just adopted takes QEMU's word for whether its vCPUs run.
    const next = stateOfRunState(status, guest.pauseRequested) ?? (guest.state === "starting" ? (running ? "running" : "halted") : null);
    if (next === null || next === guest.state) return;
    // An ACPI shutdown in progress: the guest runs on until it powers off.
    if (guest.state === "shutting-down" && (next === "running" || next === "paused")) return;
    // Read before deciding: the guest may change meanwhile (it exits, someone forces it off).
    const tail = isHalted(next) ? await logTail(guest.files.log) : null;
    if (!hooks.isCurrent(guest)) return;
    if (!canTransition(guest.state, next)) {
      console.error(`agent: guest ${guest.id}: QEMU's run state "${status}" does not fit its state ${guest.state}; left as it is`);
      return;
    }
    // A pause marker an agent wrote just before it died, whose stop never reached QEMU.
    if (guest.state === "starting" && next === "running" && guest.pauseRequested) await guest.setPauseRequested(false);
    guest.logTail = tail;
    guest.haltReason = haltReasonOf(next, status, guest.lastIoError);
    if (isHalted(next)) console.log(`agent: guest ${guest.id}: QEMU halted it (${status})${guest.haltReason ? `: ${guest.haltReason}` : ""}`);
    hooks.transition(guest, next);
  });
  guest.runStateCheckWaiting = check;
  return check;
}

/** What the status says of a halt: a disk error's cause, a sleeping guest, QEMU's word for another halt; null otherwise. */
function haltReasonOf(state: GuestState, runState: string, lastIoError: string | null): string | null {
  if (state === "io-error") return lastIoError ?? "a disk request failed (QEMU did not say which)";
  if (state !== "halted") return null;
  return runState === "suspended" ? "the guest suspended itself (ACPI sleep); resume wakes it" : `QEMU's run state is "${runState}"`;
}

/** A disk error's BLOCK_IO_ERROR event in words: which device, doing what, and why. */
function ioErrorReason(data: Record<string, unknown>): string {
  const device = typeof data.device === "string" && data.device ? data.device : typeof data["node-name"] === "string" ? data["node-name"] : "a disk";
  const why = data.nospace === true ? "no space left on its storage folder" : typeof data.reason === "string" ? data.reason : "an I/O error";
  return `${String(data.operation ?? "access")} on ${device} failed: ${why}`;
}
