/**
 * The host ports guests take: the TLS VNC endpoints (GUESTHOUSE_VNC_TLS_PORTS, one per
 * running guest with a TLS display, claimed before each await so two starts never pick
 * the same) and the ports user-mode NICs forward, which only the range the admin allows
 * may hold (GUESTHOUSE_FORWARD_PORTS). The agent's configuration refuses a forward range
 * that overlaps the TLS VNC range, so the two never meet; the web also refuses a forward
 * on the dashboard's own port.
 */
import net from "node:net";
import { GuesthouseError } from "../domain/errors";
import type { GuestSpec } from "../domain/types";
import type { AgentConfig, ForwardPolicy } from "./config";
import type { SupervisedGuest } from "./guest-state";

export class VncTlsPorts {
  /** `guests`: every guest the agent supervises now. */
  constructor(
    private readonly tls: AgentConfig["vncTls"],
    private readonly guests: () => Iterable<SupervisedGuest>,
  ) {}

  /** Every port of GUESTHOUSE_VNC_TLS_PORTS, in order (none when TLS VNC is off). */
  all(): number[] {
    const tls = this.tls;
    if (!tls) return [];
    return Array.from({ length: tls.lastPort - tls.firstPort + 1 }, (_, i) => tls.firstPort + i);
  }

  /** The ports other guests' QEMUs hold or are starting with. */
  taken(except: SupervisedGuest | null): Set<number> {
    const taken = new Set<number>();
    for (const g of this.guests()) {
      if (g !== except && g.vncTls && g.state !== "crashed") taken.add(g.vncTls.port);
    }
    return taken;
  }

  /**
   * Claims a free port of the range for a starting guest: one no other guest holds
   * (claimed before each await, so two starts never pick the same) and that nothing
   * else on the host listens on. Refuses clearly when none is left.
   */
  async claim(guest: SupervisedGuest): Promise<number | undefined> {
    const tls = this.tls;
    if (!tls) return undefined;
    for (const port of this.all()) {
      // Asked again for each port: another start may have claimed one while this one awaited.
      if (this.taken(guest).has(port)) continue;
      guest.vncTls = { host: tls.connectHost, port };
      if (await portFree(tls.address, port)) return port;
    }
    guest.vncTls = null;
    const range = tls.firstPort === tls.lastPort ? `port ${tls.firstPort}` : `ports ${tls.firstPort}–${tls.lastPort}`;
    throw new GuesthouseError(
      "conflict",
      `No port is free for this guest's TLS VNC endpoint: ${range} (GUESTHOUSE_VNC_TLS_PORTS) are all taken by running guests or other programs. Stop a guest, or give the agent a wider range.`,
    );
  }

  /** The port a guest would get if it started now (for its command line shown before a start). */
  firstFree(): number | undefined {
    const taken = this.taken(null);
    return this.all().find((p) => !taken.has(p));
  }
}

/**
 * Port forwards only in the range the host allows: never the dashboard's port, a TLS VNC
 * port or another service's (the web checks the same when the hardware is saved).
 */
export function assertForwardsAllowed(spec: GuestSpec, policy: ForwardPolicy): void {
  for (const f of spec.nics.flatMap((n) => n.forwards)) {
    if (f.hostPort < policy.firstPort || f.hostPort > policy.lastPort) {
      throw new GuesthouseError(
        "invalid-input",
        `Host port ${f.protocol} ${f.hostPort} is outside the ports this host forwards to guests (${policy.firstPort}–${policy.lastPort}). Choose one in that range.`,
      );
    }
  }
}

/** Nothing listens on this address and port now (QEMU will bind it a moment later). */
function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once("error", () => resolve(false));
    probe.listen({ host: address, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}
