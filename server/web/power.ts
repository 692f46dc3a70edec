/** Power actions on a guest (the guest page's buttons; app/actions/power-guest.ts runs them as the session's user). */
import { z } from "zod";
import type { SessionUser } from "../auth/sessions";
import type { AgentClient } from "../agent-client";
import { GuesthouseError } from "../domain/errors";
import { POWER_ACTIONS, type GuestSpec, type GuestStatus, type PowerAction } from "../domain/types";
import { parseOrThrow } from "../domain/validation";
import { agentFor, liveState, loadGuest, specOf } from "./guests";
import { claimRunning, unclaimRunning } from "./quotas";
import { recordEvent } from "./audit";
import { refreshPage } from "./refresh";
import { stateHub } from "./state-hub";

const RUN: Record<PowerAction, (agent: AgentClient, spec: GuestSpec) => Promise<GuestStatus>> = {
  start: (agent, spec) => agent.start(spec),
  shutdown: (agent, spec) => agent.shutdown(spec.id),
  reboot: (agent, spec) => agent.reboot(spec),
  reset: (agent, spec) => agent.reset(spec.id),
  pause: (agent, spec) => agent.pause(spec.id),
  resume: (agent, spec) => agent.resume(spec.id),
  "force-off": (agent, spec) => agent.forceOff(spec.id),
  restart: (agent, spec) => agent.restart(spec),
};

/** The actions that may start QEMU with the guest's hardware as now saved. */
const CLAIMS = new Set<PowerAction>(["start", "restart", "reboot"]);

/**
 * Changes a guest's power state: start, ACPI shutdown or reboot, hard reset, pause,
 * resume, force off, and restart (force off and start again) for a guest QEMU halted. The agent checks the state table too, so a stale page that
 * offers a button the state no longer allows gets a clear refusal.
 */
export async function powerGuest(user: SessionUser, guestId: string, action: PowerAction, options?: { bootMenu?: boolean }): Promise<GuestStatus["state"]> {
  const op = parseOrThrow(z.enum(POWER_ACTIONS), action, "The action");
  const { bootMenu } = parseOrThrow(z.strictObject({ bootMenu: z.boolean().optional() }), options ?? {}, "The options");
  const guest = await loadGuest(user, guestId, "operate");
  if (guest.isTemplate) {
    throw new GuesthouseError("conflict", `${guest.name} is a template: templates are never started. Clone it to make a guest.`);
  }
  // What runs counts against the team's quotas of vCPUs and memory: claimed before it starts.
  const mark = CLAIMS.has(op) ? await claimRunning(guest) : null;
  try {
    // The boot menu is a one-time choice for this start, never stored.
    const status = await RUN[op](agentFor(guest.host), { ...specOf(guest), ...(bootMenu ? { bootMenu: true } : {}) });
    stateHub.observe(guest.host.id, status);
    if (status.state === "stopped") await unclaimRunning(guest.id);
    await recordEvent(op, true, `${op} ${guest.name}`, user, guest.id);
    refreshPage("/");
    return status.state;
  } catch (err) {
    if (mark) {
      // A start that failed took nothing: unless the guest runs after all (the answer was lost).
      const state = await liveState(guest).then((s) => s.state, () => "stopped");
      if (state === "stopped") await unclaimRunning(guest.id, mark);
    }
    await recordEvent(op, false, `${op} ${guest.name} failed: ${(err as Error).message}`, user, guest.id).catch(() => {});
    throw err;
  }
}
