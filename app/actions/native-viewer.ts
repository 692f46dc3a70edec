"use server";

import { GuesthouseError } from "@/server/domain/errors";
import type { NativeVncPassword } from "@/server/domain/types";
import { authedAction } from "@/server/web/action";
import { agentFor, loadGuest } from "@/server/web/guests";
import { recordEvent } from "@/server/web/audit";

/**
 * A one-time VNC password for a native viewer (remote-viewer, TigerVNC) on the guest's
 * TLS VNC endpoint, with the host and port to connect to. Only who may operate the guest
 * (server/auth/policy.ts) may have one; the agent sets it on the guest's TLS display only, and it ends
 * at its first login or after its lifetime. Recorded either way.
 */
export const nativeViewerPassword = authedAction("native-viewer-password", async (user, guestId: string): Promise<NativeVncPassword> => {
  const guest = await loadGuest(user, guestId, "operate");
  if (guest.isTemplate) throw new GuesthouseError("conflict", `${guest.name} is a template: templates never run.`);
  try {
    const issued = await agentFor(guest.host).nativeVncPassword(guest.id);
    await recordEvent("native-viewer", true, `got a one-time password for a native viewer of ${guest.name} (${issued.host}:${issued.port})`, user, guest.id);
    return issued;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await recordEvent("native-viewer", false, `a native viewer password for ${guest.name} failed: ${message}`, user, guest.id).catch(() => {});
    throw err;
  }
});
