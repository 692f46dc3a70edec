/**
 * `/metrics` for Prometheus: what runs now, as the caller may see it, in the text format
 * (exposition.ts). Gathering asks the policy first (views.ts `seenGuests`: the guests of
 * `ownedWhere(user, "view")`), then each host's agent once; rendering is a pure function
 * of what was gathered (`scrapeFamilies`), so its every rule is unit-tested.
 *
 * - Every guest the caller may see has `guesthouse_guest_up` (1 while its QEMU runs,
 *   paused included; 0 when stopped), `_info` (its id), `_vcpus` and
 *   `_memory_configured_bytes` (what it runs with, or gets at its next start); a running
 *   guest has its counters too, each only where its source has a value (no balloon
 *   driver: no guest-side memory; a user-mode NIC: no network counters; no cgroup of its
 *   own: no pressure). Nothing is ever reported as 0 for "unknown".
 * - `guesthouse_agent_up{host}` says whether each host in view answered (a member's: the
 *   hosts of their guests; an admin's: every host). A host that did not answer within
 *   AGENT_WAIT_MS (views.ts) has 0 there and none of its guests' series, neither up 1 nor up 0:
 *   their state is not known, and a "stopped" there would fire false alerts.
 * - `guesthouse_host_*` go to admins (policy `canSeeHostMetrics`: an admin's session, or
 *   an admin's token of any scope that is not limited to a team); nobody else
 *   sees a host-wide figure (another team's load shows in it).
 *
 * Labels: `team` and `guest` are names (unique together), `host` the host's name; `disk`
 * is the image's file name as the disk pages show it, with its storage folder in `pool`
 * (the volume id is internal; it stands in only for a disk the database no longer
 * knows); `nic` is the card's MAC address, which stays with the card when others are
 * added or removed and is what the guest's own `ip link` shows.
 *
 * Values are the agent's latest reading (every GUESTHOUSE_METRICS_INTERVAL_MS, 10 s by
 * default), without timestamps: a scrape more often than that sees the same values again.
 */
import { canSeeHostMetrics } from "../../auth/policy";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import type { GuestCurrent, HostCurrent, MetricsCurrent } from "../../domain/metrics";
import { exposition, type MetricFamily, type MetricType } from "./exposition";
import { agentsNow, seenGuests } from "./views";

/** How long a scrape waits for each agent (Prometheus gives up after 10 s by default). */

/** A guest in a scrape, with what it is labelled by. */
export interface ScrapeGuest {
  id: string;
  name: string;
  team: string;
  host: string;
  /** From the database: what its next start gives it (a running guest's own come from `current`). */
  vcpus: number;
  memory: number;
  /** What runs now, or null when the guest is stopped. */
  current: GuestCurrent | null;
  /** What people call each disk (by volume id): the image's file and its storage folder. */
  disks: ReadonlyMap<string, { file: string; pool: string }>;
}

/** Everything one scrape shows, gathered for one caller. */
export interface Scrape {
  /** The guests the caller may see whose host answered. */
  guests: ScrapeGuest[];
  /** Each host in view, with its figures, or null when its agent did not answer. */
  hosts: Array<{ name: string; current: HostCurrent | null; /** every guest it runs, the caller's or not */ running: GuestCurrent[] }>;
  /** Whether the caller sees host-wide series. */
  hostSeries: boolean;
}

/**
 * Every family the scrape may hold, in the order it writes them: name, type, help. A
 * family with no sample in a scrape is left out of it.
 */
const FAMILIES = [
  ["guesthouse_agent_up", "gauge", "1 when the host's agent answered this scrape, 0 when it did not (its guests are then left out)."],
  ["guesthouse_guest_info", "gauge", "Always 1: the guest's id in Guesthouse (its page is /guests/<id>)."],
  ["guesthouse_guest_up", "gauge", "1 while the guest's QEMU runs (paused included), 0 when it is stopped."],
  ["guesthouse_guest_vcpus", "gauge", "vCPUs the guest runs with (stopped: gets at its next start)."],
  ["guesthouse_guest_memory_configured_bytes", "gauge", "Memory the guest runs with (stopped: gets at its next start), bytes."],
  ["guesthouse_guest_cpu_seconds_total", "counter", "CPU time of each vCPU thread since QEMU started, seconds."],
  ["guesthouse_guest_process_cpu_seconds_total", "counter", "CPU time of the whole QEMU process (vCPUs, I/O, emulation) since it started, seconds."],
  ["guesthouse_guest_memory_resident_bytes", "gauge", "QEMU's resident memory on the host, bytes."],
  ["guesthouse_guest_memory_guest_total_bytes", "gauge", "Memory as the guest sees it through its balloon driver: total, bytes (only with a driver reporting stats)."],
  ["guesthouse_guest_memory_guest_available_bytes", "gauge", "Memory as the guest sees it through its balloon driver: available, bytes (only with a driver reporting stats)."],
  ["guesthouse_guest_memory_guest_free_bytes", "gauge", "Memory as the guest sees it through its balloon driver: free, bytes (only with a driver reporting stats)."],
  ["guesthouse_guest_disk_read_bytes_total", "counter", "Bytes read from the disk since QEMU started."],
  ["guesthouse_guest_disk_written_bytes_total", "counter", "Bytes written to the disk since QEMU started."],
  ["guesthouse_guest_disk_reads_total", "counter", "Read operations on the disk since QEMU started."],
  ["guesthouse_guest_disk_writes_total", "counter", "Write operations on the disk since QEMU started."],
  ["guesthouse_guest_disk_read_seconds_total", "counter", "Time spent on reads from the disk since QEMU started, seconds."],
  ["guesthouse_guest_disk_write_seconds_total", "counter", "Time spent on writes to the disk since QEMU started, seconds."],
  ["guesthouse_guest_disk_allocated_bytes", "gauge", "Space the disk's image takes on the host, bytes."],
  ["guesthouse_guest_network_receive_bytes_total", "counter", "Bytes the guest received through the card (its tap's transmit counter), since the tap was made."],
  ["guesthouse_guest_network_transmit_bytes_total", "counter", "Bytes the guest sent through the card (its tap's receive counter), since the tap was made."],
  ["guesthouse_guest_network_receive_packets_total", "counter", "Packets the guest received through the card, since the tap was made."],
  ["guesthouse_guest_network_transmit_packets_total", "counter", "Packets the guest sent through the card, since the tap was made."],
  ["guesthouse_guest_network_receive_drops_total", "counter", "Packets to the guest dropped on the card's tap, since the tap was made."],
  ["guesthouse_guest_network_transmit_drops_total", "counter", "Packets from the guest dropped on the card's tap, since the tap was made."],
  ["guesthouse_guest_pressure_cpu_waiting_seconds_total", "counter", "Time some task of the guest's QEMU waited for a CPU (PSI 'some' of its cgroup), seconds."],
  ["guesthouse_guest_pressure_memory_waiting_seconds_total", "counter", "Time some task of the guest's QEMU stalled on memory (PSI 'some' of its cgroup), seconds."],
  ["guesthouse_guest_pressure_io_waiting_seconds_total", "counter", "Time some task of the guest's QEMU stalled on I/O (PSI 'some' of its cgroup), seconds."],
  ["guesthouse_host_cores", "gauge", "CPU cores of the host."],
  ["guesthouse_host_cpu_busy_seconds_total", "counter", "Busy time of all the host's cores together since it booted, seconds."],
  ["guesthouse_host_memory_total_bytes", "gauge", "The host's memory, bytes."],
  ["guesthouse_host_memory_available_bytes", "gauge", "The host's memory available for new work (MemAvailable), bytes."],
  ["guesthouse_host_load1", "gauge", "The host's load average over 1 minute."],
  ["guesthouse_host_load5", "gauge", "The host's load average over 5 minutes."],
  ["guesthouse_host_load15", "gauge", "The host's load average over 15 minutes."],
  ["guesthouse_host_storage_total_bytes", "gauge", "Size of the file system of the storage folder, bytes."],
  ["guesthouse_host_storage_free_bytes", "gauge", "Free space in the storage folder's file system, bytes."],
  ["guesthouse_host_guests_running", "gauge", "Guests whose QEMU runs on the host, every team's."],
  ["guesthouse_host_vcpus_allocated", "gauge", "vCPUs of the guests running on the host (compare with guesthouse_host_cores for overcommit)."],
  ["guesthouse_host_memory_allocated_bytes", "gauge", "Memory configured for the guests running on the host, bytes (compare with guesthouse_host_memory_total_bytes)."],
] as const satisfies ReadonlyArray<readonly [string, MetricType, string]>;

type FamilyName = (typeof FAMILIES)[number][0];

/** The families of one scrape, filled as the data is walked. */
class Families {
  private readonly byName = new Map<string, MetricFamily>(FAMILIES.map(([name, type, help]) => [name, { name, type, help, samples: [] }]));

  /** One sample; nothing for a value that is not known (null, undefined, not a number). */
  add(name: FamilyName, labels: Record<string, string>, value: number | null | undefined): void {
    if (value === null || value === undefined || !Number.isFinite(value)) return;
    this.byName.get(name)!.samples.push({ labels, value });
  }

  all(): MetricFamily[] {
    return [...this.byName.values()];
  }
}

/** The families a scrape holds (pure: what was gathered in, samples out). */
export function scrapeFamilies(scrape: Scrape): MetricFamily[] {
  const f = new Families();
  for (const host of scrape.hosts) f.add("guesthouse_agent_up", { host: host.name }, host.current ? 1 : 0);

  for (const guest of scrape.guests) {
    const base = { team: guest.team, guest: guest.name, host: guest.host };
    const now = guest.current;
    f.add("guesthouse_guest_info", { ...base, id: guest.id }, 1);
    f.add("guesthouse_guest_up", base, now ? 1 : 0);
    f.add("guesthouse_guest_vcpus", base, now ? now.vcpus : guest.vcpus);
    f.add("guesthouse_guest_memory_configured_bytes", base, now ? now.memory : guest.memory);
    if (!now) continue;
    now.vcpuSeconds.forEach((seconds, i) => f.add("guesthouse_guest_cpu_seconds_total", { ...base, vcpu: String(i) }, seconds));
    f.add("guesthouse_guest_process_cpu_seconds_total", base, now.processSeconds);
    f.add("guesthouse_guest_memory_resident_bytes", base, now.rss);
    f.add("guesthouse_guest_memory_guest_total_bytes", base, now.guestMemory?.total);
    f.add("guesthouse_guest_memory_guest_available_bytes", base, now.guestMemory?.available);
    f.add("guesthouse_guest_memory_guest_free_bytes", base, now.guestMemory?.free);
    for (const disk of now.disks) {
      const known = guest.disks.get(disk.volume);
      const labels = known ? { ...base, disk: known.file, pool: known.pool } : { ...base, disk: disk.volume };
      f.add("guesthouse_guest_disk_read_bytes_total", labels, disk.readBytes);
      f.add("guesthouse_guest_disk_written_bytes_total", labels, disk.writeBytes);
      f.add("guesthouse_guest_disk_reads_total", labels, disk.readOps);
      f.add("guesthouse_guest_disk_writes_total", labels, disk.writeOps);
      f.add("guesthouse_guest_disk_read_seconds_total", labels, disk.readSeconds);
      f.add("guesthouse_guest_disk_write_seconds_total", labels, disk.writeSeconds);
      f.add("guesthouse_guest_disk_allocated_bytes", labels, disk.allocatedBytes);
    }
    for (const nic of now.nics) {
      const c = nic.counters;
      if (!c) continue;
      const labels = { ...base, nic: nic.mac };
      f.add("guesthouse_guest_network_receive_bytes_total", labels, c.rxBytes);
      f.add("guesthouse_guest_network_transmit_bytes_total", labels, c.txBytes);
      f.add("guesthouse_guest_network_receive_packets_total", labels, c.rxPackets);
      f.add("guesthouse_guest_network_transmit_packets_total", labels, c.txPackets);
      f.add("guesthouse_guest_network_receive_drops_total", labels, c.rxDropped);
      f.add("guesthouse_guest_network_transmit_drops_total", labels, c.txDropped);
    }
    f.add("guesthouse_guest_pressure_cpu_waiting_seconds_total", base, now.pressure?.cpu);
    f.add("guesthouse_guest_pressure_memory_waiting_seconds_total", base, now.pressure?.memory);
    f.add("guesthouse_guest_pressure_io_waiting_seconds_total", base, now.pressure?.io);
  }

  if (scrape.hostSeries) {
    for (const { name, current: h, running } of scrape.hosts) {
      if (!h) continue;
      const base = { host: name };
      f.add("guesthouse_host_cores", base, h.cores);
      f.add("guesthouse_host_cpu_busy_seconds_total", base, h.cpuBusySeconds);
      f.add("guesthouse_host_memory_total_bytes", base, h.memTotal);
      f.add("guesthouse_host_memory_available_bytes", base, h.memAvailable);
      f.add("guesthouse_host_load1", base, h.load[0]);
      f.add("guesthouse_host_load5", base, h.load[1]);
      f.add("guesthouse_host_load15", base, h.load[2]);
      for (const folder of h.folders) {
        f.add("guesthouse_host_storage_total_bytes", { ...base, pool: folder.pool }, folder.totalBytes);
        f.add("guesthouse_host_storage_free_bytes", { ...base, pool: folder.pool }, folder.freeBytes);
      }
      // The agent's own count of the tick (every QEMU it supervises), else the guests it reported.
      f.add("guesthouse_host_guests_running", base, h.sample.guests ?? running.length);
      f.add("guesthouse_host_vcpus_allocated", base, h.sample.vcpus ?? running.reduce((n, g) => n + g.vcpus, 0));
      f.add("guesthouse_host_memory_allocated_bytes", base, h.sample.memAllocated ?? running.reduce((n, g) => n + g.memory, 0));
    }
  }
  return f.all();
}

/** The scrape as Prometheus's text format. */
export function renderScrape(scrape: Scrape): string {
  return exposition(scrapeFamilies(scrape));
}

// ——— Gathering, policy first ———

/** Whether each host's agent answered the last scrape, to log a change once rather than every scrape. */
const agentAnswered = new Map<string, boolean>();

/** Says once when a host's agent stops or starts answering /metrics again (agentsNow), not at every scrape. */
function noteAnswer(host: { id: string; name: string }, answer: MetricsCurrent | Error | undefined): MetricsCurrent | null {
  if (answer && !(answer instanceof Error)) {
    if (agentAnswered.get(host.id) === false) console.log(`metrics: the agent of host ${host.name} answers /metrics again`);
    agentAnswered.set(host.id, true);
    return answer;
  }
  if (agentAnswered.get(host.id) !== false) console.error(`metrics: the agent of host ${host.name} did not answer /metrics (guesthouse_agent_up 0):`, answer?.message);
  agentAnswered.set(host.id, false);
  return null;
}

/**
 * What `user` may see now: their guests (policy `ownedWhere(user, "view")`), each host
 * those are on (every host for one who manages the host), each agent asked once.
 */
export async function gatherScrape(user: SessionUser): Promise<Scrape> {
  const seen = await seenGuests(user);
  const hostSeries = canSeeHostMetrics(user);
  const hosts = new Map<string, { id: string; name: string; endpoint: string }>();
  if (hostSeries) for (const h of await db.host.findMany({ select: { id: true, name: true, endpoint: true } })) hosts.set(h.id, h);
  for (const g of seen) hosts.set(g.host.id, g.host);
  const asked = await agentsNow(hosts.values());
  const answers = new Map([...hosts.values()].map((h) => [h.id, noteAnswer(h, asked.get(h.id))]));

  // A guest runs when its own host reports it.
  const running = new Map<string, GuestCurrent>();
  for (const g of seen) {
    const current = answers.get(g.host.id)?.guests.find((c) => c.id === g.id);
    if (current) running.set(g.id, current);
  }
  const diskRows = running.size
    ? await db.disk.findMany({ where: { guestId: { in: [...running.keys()] } }, select: { guestId: true, volume: true, file: true, pool: true } })
    : [];
  const disks = new Map<string, Map<string, { file: string; pool: string }>>();
  for (const d of diskRows) {
    if (!d.guestId) continue;
    if (!disks.has(d.guestId)) disks.set(d.guestId, new Map());
    disks.get(d.guestId)!.set(d.volume, { file: d.file, pool: d.pool });
  }

  return {
    guests: seen
      .filter((g) => answers.get(g.host.id))
      .map((g) => ({
        id: g.id,
        name: g.name,
        team: g.team.name,
        host: g.host.name,
        vcpus: g.vcpus,
        memory: g.memory,
        current: running.get(g.id) ?? null,
        disks: disks.get(g.id) ?? new Map(),
      })),
    hosts: [...hosts.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((h) => {
        const answer = answers.get(h.id) ?? null;
        // Other teams' guests count in the host's own figures only, for those who see those.
        return { name: h.name, current: answer?.host ?? null, running: hostSeries ? (answer?.guests ?? []) : [] };
      }),
    hostSeries,
  };
}

/** The scrape `user` gets, as text. */
export async function scrapeText(user: SessionUser): Promise<string> {
  return renderScrape(await gatherScrape(user));
}
