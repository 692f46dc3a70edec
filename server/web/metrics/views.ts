/**
 * What the pages, the REST API and `/metrics` may show of the metrics, each read asking
 * the one policy first: a guest's history and live samples to whoever may see the guest,
 * the host's to admins (canSeeHostMetrics), "top consumers" and the scrape over the guests
 * the caller may see (ownedWhere "view"), never another team's.
 *
 * History comes from the store (store.ts, the database); what runs now from each host's
 * agent (one call per host, never per guest).
 */
import { canSeeHostMetrics, ownedWhere } from "../../auth/policy";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import { GuesthouseError } from "../../domain/errors";
import {
  GUEST_FIELDS,
  type GuestCurrent,
  type GuestField,
  type GuestSample,
  type HostCurrent,
  type HostField,
  type MetricRange,
  type MetricSeries,
  type MetricsCurrent,
} from "../../domain/metrics";
import { agentFor, loadGuestBrief } from "../guests";
import { readSeries, recentStats } from "./store";

/** A guest's history over a range (10 s points for an hour … hourly for a year). */
export async function guestHistory(user: SessionUser, guestId: string, range: MetricRange): Promise<MetricSeries<GuestField>> {
  const guest = await loadGuestBrief(user, guestId, "view");
  return (await readSeries("guest", guest.id, range)) as MetricSeries<GuestField>;
}

/** The samples of a running guest since `after` (ms), read every second while its page asks. */
export async function guestLive(user: SessionUser, guestId: string, after: number): Promise<Array<{ at: number; sample: GuestSample }>> {
  const guest = await loadGuestBrief(user, guestId, "view");
  return agentFor(guest.host).metricsLive(guest.id, after);
}

/** A running guest's counters now (per vCPU, disk and NIC), or null when it does not run. */
export async function guestNow(user: SessionUser, guestId: string): Promise<GuestCurrent | null> {
  const guest = await loadGuestBrief(user, guestId, "view");
  const current = await agentFor(guest.host).metricsCurrent();
  return current.guests.find((g) => g.id === guest.id) ?? null;
}

/** The host, for one who may see its figures (canSeeHostMetrics). */
export async function hostFor(user: SessionUser, hostId: string): Promise<HostRef> {
  if (!canSeeHostMetrics(user)) throw new GuesthouseError("forbidden", "Only admins see the host's metrics and alerts; your guests' own are on their pages.");
  const host = await db.host.findUnique({ where: { id: hostId }, select: { id: true, name: true, endpoint: true } });
  if (!host) throw new GuesthouseError("not-found", "There is no such host.");
  return host;
}

/** A host's history over a range (admins). */
export async function hostHistory(user: SessionUser, hostId: string, range: MetricRange): Promise<MetricSeries<HostField>> {
  const host = await hostFor(user, hostId);
  return (await readSeries("host", host.id, range)) as MetricSeries<HostField>;
}

/** A host's figures now: CPU, memory, load, storage folders, overcommit (admins). */
export async function hostNow(user: SessionUser, hostId: string): Promise<HostCurrent> {
  const host = await hostFor(user, hostId);
  return (await agentFor(host).metricsCurrent()).host;
}

/** A guest the caller may see, with what the metrics views label it by. */
export interface SeenGuest {
  id: string;
  name: string;
  team: { id: string; name: string };
  host: { id: string; name: string; endpoint: string };
  vcpus: number;
  /** Configured memory, bytes. */
  memory: number;
}

/** Every guest this user may see, for views across guests (`only`: of these ids, such as the rows a page shows). */
export async function seenGuests(user: SessionUser, only?: readonly string[]): Promise<SeenGuest[]> {
  const rows = await db.guest.findMany({
    where: only ? { AND: [ownedWhere(user, "view"), { id: { in: [...only] } }] } : ownedWhere(user, "view"),
    select: { id: true, name: true, vcpus: true, memoryMiB: true, team: { select: { id: true, name: true } }, host: { select: { id: true, name: true, endpoint: true } } },
    orderBy: { name: "asc" },
  });
  return rows.map((r) => ({ id: r.id, name: r.name, team: r.team, host: r.host, vcpus: r.vcpus, memory: r.memoryMiB * 1024 * 1024 }));
}

/** How long a page or a scrape waits for an agent's figures before counting it as not answering. */
export const AGENT_WAIT_MS = 5000;

type HostRef = { id: string; name: string; endpoint: string };

/**
 * Each host's figures now, by host id: each agent asked once and waited for at most
 * AGENT_WAIT_MS (a hung agent must not hold a page or a scrape); one that does not answer
 * maps to why.
 */
export async function agentsNow(hosts: Iterable<HostRef>): Promise<Map<string, MetricsCurrent | Error>> {
  const out = new Map<string, MetricsCurrent | Error>();
  await Promise.all(
    [...hosts].map(async (host) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${AGENT_WAIT_MS} ms`)), AGENT_WAIT_MS);
      });
      try {
        out.set(host.id, await Promise.race([agentFor(host).metricsCurrent(), timeout]));
      } catch (err) {
        out.set(host.id, err instanceof Error ? err : new Error(String(err)));
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return out;
}

/**
 * What runs now on the hosts of these guests (agentsNow). A host whose agent does not
 * answer is left out (its guests show no figures) and named in `unreachable`.
 */
export async function currentOf(guests: readonly SeenGuest[]): Promise<{ guests: Map<string, GuestCurrent>; hosts: Map<string, HostCurrent>; unreachable: string[] }> {
  const hosts = new Map<string, HostRef>();
  for (const g of guests) hosts.set(g.host.id, g.host);
  const wanted = new Set(guests.map((g) => g.id));
  const out = { guests: new Map<string, GuestCurrent>(), hosts: new Map<string, HostCurrent>(), unreachable: [] as string[] };
  for (const [id, answer] of await agentsNow(hosts.values())) {
    if (answer instanceof Error) {
      out.unreachable.push(hosts.get(id)!.name);
      continue;
    }
    out.hosts.set(id, answer.host);
    for (const g of answer.guests) if (wanted.has(g.id)) out.guests.set(g.id, g);
  }
  return out;
}

/** Which window "top consumers" ranks by: the latest sample, or the average over the last hour or day. */
export const TOP_WINDOWS = { now: 0, hour: 3600, day: 86_400 } as const;
export type TopWindow = keyof typeof TOP_WINDOWS;

export interface ConsumerRow extends Omit<SeenGuest, "host"> {
  host: { id: string; name: string };
  running: boolean;
  /** The figures ranked by: each field's latest value (window "now") or its average over the window; null where unknown. */
  figures: Record<GuestField, number | null>;
  /** Each field's peak over the window (the latest value for "now"). */
  peaks: Record<GuestField, number | null>;
}

const nothing = () => Object.fromEntries(GUEST_FIELDS.map((f) => [f, null])) as Record<GuestField, number | null>;

/**
 * Every guest this user may see, ranked by one field, highest first (unknowns last):
 * which guest is eating the host, and since when.
 */
export async function topConsumers(user: SessionUser, sort: GuestField, window: TopWindow): Promise<ConsumerRow[]> {
  const guests = await seenGuests(user);
  const now = await currentOf(guests);
  const stats = window === "now" ? null : await recentStats("guest", guests.map((g) => g.id), TOP_WINDOWS[window]);
  const rows: ConsumerRow[] = guests.map((g) => {
    const current = now.guests.get(g.id);
    const figures = nothing();
    const peaks = nothing();
    for (const field of GUEST_FIELDS) {
      if (stats) {
        const s = stats.get(g.id)?.[field];
        figures[field] = s?.avg ?? null;
        peaks[field] = s?.max ?? null;
      } else {
        figures[field] = peaks[field] = current?.sample[field] ?? null;
      }
    }
    return { id: g.id, name: g.name, team: g.team, host: { id: g.host.id, name: g.host.name }, vcpus: g.vcpus, memory: g.memory, running: current !== undefined, figures, peaks };
  });
  return rows.sort((a, b) => (b.figures[sort] ?? -Infinity) - (a.figures[sort] ?? -Infinity) || a.name.localeCompare(b.name));
}
