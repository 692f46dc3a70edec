/**
 * The guest list's small live figures: CPU and memory of each running guest the caller may
 * see (of the rows a page shows, when it names them), with the thresholds each crosses.
 * Each host's agent is asked once (views.ts currentOf), never once per guest, and the list
 * page itself asks nothing of it: its client polls this (GET /api/v1/metrics/guests), so
 * the list renders as fast as before.
 */
import type { SessionUser } from "../../auth/sessions";
import { alertsFor, type MetricAlert } from "./thresholds";
import { currentOf, seenGuests } from "./views";

export interface GuestFigure {
  id: string;
  /** When it was read, ms since the epoch. */
  at: number;
  /** % of its vCPUs (null until the agent has two readings). */
  cpu: number | null;
  /** QEMU's resident memory, bytes. */
  rss: number;
  /** Configured memory, bytes. */
  memory: number;
  /** In use as the guest sees it (total less available), bytes; null without a balloon driver. */
  guestUsed: number | null;
  alerts: MetricAlert[];
}

export async function guestFigures(user: SessionUser, ids?: readonly string[]): Promise<{ items: GuestFigure[]; unreachable: string[] }> {
  const guests = await seenGuests(user, ids);
  if (guests.length === 0) return { items: [], unreachable: [] };
  const now = await currentOf(guests);
  // Thresholds of the running ones, with the guests already read under the policy (no second query of them).
  const running = guests.filter((g) => now.guests.has(g.id));
  // A failed check costs the badges, not the figures (the list polls again in a few seconds).
  const alerts = running.length
    ? await alertsFor(running, now).catch((err: unknown) => {
        console.error("web: could not check the guests' thresholds:", err);
        return new Map<string, MetricAlert[]>();
      })
    : new Map<string, MetricAlert[]>();
  const items: GuestFigure[] = [];
  for (const g of running) {
    const c = now.guests.get(g.id)!;
    items.push({
      id: g.id,
      at: c.at,
      cpu: c.sample.cpu,
      rss: c.rss,
      memory: c.memory,
      guestUsed: c.guestMemory ? c.guestMemory.total - c.guestMemory.available : null,
      alerts: alerts.get(g.id) ?? [],
    });
  }
  return { items, unreachable: now.unreachable };
}
