"use server";

import { revalidatePath } from "next/cache";
import { z } from "zod";
import type { AgentClient } from "@/server/agent-client";
import { GuesthouseError } from "@/server/domain/errors";
import { POWER_ACTIONS, type GuestSpec, type GuestStatus, type PowerAction } from "@/server/domain/types";
import { parseOrThrow } from "@/server/domain/validation";
import { authedAction } from "@/server/web/action";
import { agentFor, loadGuest, specOf } from "@/server/web/guests";
import { recordEvent } from "@/server/web/audit";

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

/**
 * Changes a guest's power state: start, ACPI shutdown or reboot, hard reset, pause,
 * resume, force off, and restart (force off and start again) for a guest QEMU halted. The agent checks the state table too, so a stale page that
 * offers a button the state no longer allows gets a clear refusal.
 */
export const powerGuest = authedAction("power-guest", async (user, guestId: string, action: PowerAction, options?: { bootMenu?: boolean }) => {
  const op = parseOrThrow(z.enum(POWER_ACTIONS), action, "The action");
  const { bootMenu } = parseOrThrow(z.strictObject({ bootMenu: z.boolean().optional() }), options ?? {}, "The options");
  const guest = await loadGuest(user, guestId, "operate");
  if (guest.isTemplate) {
    throw new GuesthouseError("conflict", `${guest.name} is a template: templates are never started. Clone it to make a guest.`);
  }
  try {
    // The boot menu is a one-time choice for this start, never stored.
    const status = await RUN[op](agentFor(guest.host), { ...specOf(guest), ...(bootMenu ? { bootMenu: true } : {}) });
    await recordEvent(op, true, `${op} ${guest.name}`, user, guest.id);
    revalidatePath("/");
    return status.state;
  } catch (err) {
    await recordEvent(op, false, `${op} ${guest.name} failed: ${(err as Error).message}`, user, guest.id).catch(() => {});
    throw err;
  }
});
