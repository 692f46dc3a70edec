/**
 * Metrics: what each guest and host uses, as the agent samples it and the web keeps it.
 *
 * The agent reads counters (QMP, /proc, the cgroup of each guest, the taps) and turns two
 * readings into a sample of rates and levels (server/agent/metrics/). The web fetches the
 * samples every interval and keeps them downsampled in the database
 * (server/web/metrics/): a point per 10 s for a day, per minute for a month, per hour for
 * a year, each point the min, average and max of the samples in its bucket.
 *
 * A field is null where the source has nothing to say (no balloon driver in the guest, no
 * counters for a user-mode NIC, no cgroup of its own), never 0.
 */

/** The series kept of each guest, in the order graphs and the store list them. */
export const GUEST_FIELDS = [
  /** The vCPU threads' time, % of the guest's vCPUs (100 = every vCPU busy). */
  "cpu",
  /** The whole QEMU process's time (vCPUs, I/O, emulation), % of the host's cores. */
  "hostCpu",
  /** QEMU's resident memory, bytes. */
  "rss",
  /** The guest's own view through its balloon driver, bytes (null without one). */
  "memTotal",
  "memAvailable",
  /** Bytes read and written per second, all disks. */
  "diskRead",
  "diskWrite",
  /** Operations per second, all disks. */
  "diskReadOps",
  "diskWriteOps",
  /** Milliseconds spent on I/O per second, all disks (may exceed 1000 with a queue). */
  "diskWait",
  /** Bytes per second in and out as the guest sees it (its tap's counters turned round); null with no tap. */
  "netRx",
  "netTx",
  /** Packets per second in and out, and packets dropped per second (either way). */
  "netRxPackets",
  "netTxPackets",
  "netDrops",
  /** Pressure on the guest's cgroup: % of the time some task of QEMU stalled for CPU, memory, I/O (null without a cgroup of its own). */
  "psiCpu",
  "psiMemory",
  "psiIo",
] as const;
export type GuestField = (typeof GUEST_FIELDS)[number];

/** The series kept of each host. */
export const HOST_FIELDS = [
  /** Busy time of all cores, %. */
  "cpu",
  /** Memory in use (total less available) and the total, bytes. */
  "memUsed",
  "memTotal",
  /** The 1-minute load average. */
  "load1",
  /** Running guests, and what they were given: vCPUs and memory (bytes). */
  "guests",
  "vcpus",
  "memAllocated",
] as const;
export type HostField = (typeof HOST_FIELDS)[number];

export type GuestSample = Record<GuestField, number | null>;
export type HostSample = Record<HostField, number | null>;

/** One regular tick of the agent: every running guest's sample and the host's, at one moment. */
export interface MetricsTick {
  /** Increases by one per tick within one agent's life (see MetricsBatch.boot). */
  seq: number;
  /** When it was read, ms since the epoch. */
  at: number;
  host: HostSample;
  guests: Record<string, GuestSample>;
}

/** What the agent has kept of its ticks after a given one. */
export interface MetricsBatch {
  /** Changes each time the agent starts: a sequence number from another boot means nothing. */
  boot: string;
  /** The ticks after the one asked for (all the agent keeps when that one is gone), oldest first. */
  ticks: MetricsTick[];
  /** The agent's sampling interval, ms. */
  intervalMs: number;
}

/** Counters and levels of one disk of a running guest, now (for /metrics and the guest page). */
export interface DiskCounters {
  volume: string;
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
  /** Time spent on reads and writes, seconds. */
  readSeconds: number;
  writeSeconds: number;
  /** The image's allocated size on the host, bytes (null when it could not be read). */
  allocatedBytes: number | null;
}

/** Counters of one NIC of a running guest, from the guest's point of view, or why there are none. */
export interface NicCounters {
  mac: string;
  /** Null when the card's kind has no counters (user-mode networking runs inside QEMU), with why. */
  counters: { rxBytes: number; txBytes: number; rxPackets: number; txPackets: number; rxDropped: number; txDropped: number } | null;
  why?: string;
}

/** Everything known of one running guest now: cumulative counters plus its latest sample. */
export interface GuestCurrent {
  id: string;
  /** When the counters were read, ms since the epoch. */
  at: number;
  vcpus: number;
  /** Configured memory, bytes. */
  memory: number;
  /** CPU seconds of each vCPU thread, in vCPU order, and of the whole QEMU process. */
  vcpuSeconds: number[];
  processSeconds: number;
  rss: number;
  /** The guest's view through its balloon (null without a driver reporting stats). */
  guestMemory: { total: number; free: number; available: number } | null;
  disks: DiskCounters[];
  nics: NicCounters[];
  /** Total stall time of the guest's cgroup, seconds (null without one of its own). */
  pressure: { cpu: number; memory: number; io: number } | null;
  /** Rates and levels over the last interval (null fields while there is no earlier reading). */
  sample: GuestSample;
}

/** A storage folder's space, now. */
export interface FolderSpace {
  pool: string;
  totalBytes: number;
  freeBytes: number;
}

/** Everything known of the host now. */
export interface HostCurrent {
  at: number;
  cores: number;
  /** CPU seconds of all cores, busy, since boot. */
  cpuBusySeconds: number;
  memTotal: number;
  memAvailable: number;
  load: [number, number, number];
  folders: FolderSpace[];
  /** Why guests' pressure cannot be read here, or null when each guest has a cgroup of its own. */
  pressureUnavailable: string | null;
  sample: HostSample;
}

export interface MetricsCurrent {
  host: HostCurrent;
  guests: GuestCurrent[];
}

/** What the graphs offer, with the resolution each reads and how far back it looks. */
export const METRIC_RANGES = {
  hour: { seconds: 3600, resolution: 10 },
  day: { seconds: 86_400, resolution: 60 },
  week: { seconds: 7 * 86_400, resolution: 60 },
  month: { seconds: 31 * 86_400, resolution: 3600 },
  year: { seconds: 366 * 86_400, resolution: 3600 },
} as const;
export type MetricRange = keyof typeof METRIC_RANGES;
export const METRIC_RANGE_NAMES = Object.keys(METRIC_RANGES) as MetricRange[];

/** The store's tiers: bucket width and how long its points are kept, seconds. */
export const METRIC_TIERS = [
  { resolution: 10, keepSeconds: 86_400 },
  { resolution: 60, keepSeconds: 31 * 86_400 },
  { resolution: 3600, keepSeconds: 366 * 86_400 },
] as const;
export type MetricResolution = (typeof METRIC_TIERS)[number]["resolution"];

/**
 * A stretch of one subject's history, in columns: t[i] is the start of bucket i (seconds
 * since the epoch), and each field has the min, average and max of its samples there
 * (null where no sample had a value). Buckets without any sample are left out.
 */
export interface MetricSeries<F extends string = string> {
  resolution: number;
  from: number;
  to: number;
  t: number[];
  fields: Record<F, { min: (number | null)[]; avg: (number | null)[]; max: (number | null)[] }>;
}

/**
 * What a team counts as trouble (server/web/metrics/thresholds.ts): a guest's CPU (% of its
 * vCPUs) or memory (% in use, the guest's own view, else QEMU's resident share of its
 * configured size) above `percent` for `minutes`; a storage folder its guests' disks are
 * in fuller than `percent` (minutes do not apply). A team that set none has these.
 */
export const THRESHOLD_KINDS = ["guest-cpu", "guest-memory", "folder-space"] as const;
export type ThresholdKind = (typeof THRESHOLD_KINDS)[number];
export interface Threshold {
  percent: number;
  minutes: number;
}
export const DEFAULT_THRESHOLDS: Record<ThresholdKind, Threshold> = {
  "guest-cpu": { percent: 90, minutes: 10 },
  "guest-memory": { percent: 90, minutes: 10 },
  "folder-space": { percent: 90, minutes: 0 },
};
/** The longest window a threshold may look back over: the 10 s points are kept a day. */
export const THRESHOLD_MAX_MINUTES = 24 * 60;
