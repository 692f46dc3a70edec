/**
 * Two readings of cumulative counters → one sample of rates and levels (pure).
 *
 * A counter that went backwards (a disk or card plugged out and in again, QEMU
 * restarted under the same guest) says nothing about the interval: that disk or card is
 * left out of the sum, never counted as a negative rate.
 */
import type { GuestCurrent, GuestSample, HostCurrent, HostSample } from "../../domain/metrics";

/** What the agent read of a guest at one moment: everything of GuestCurrent but the sample. */
export type GuestReading = Omit<GuestCurrent, "sample">;

/** What it read of the host, plus the CPU times in ticks the next reading compares with. */
export interface HostReading extends Omit<HostCurrent, "sample"> {
  cpuTicks: { busy: number; total: number };
  /** Running guests and what they were given. */
  guests: number;
  vcpus: number;
  memAllocated: number;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** Increments of `field` per second over matching items, or null when no item is in both readings. */
function ratePerSecond<T>(before: T[], after: T[], key: (item: T) => string, field: (item: T) => number | null, seconds: number): number | null {
  const earlier = new Map(before.map((item) => [key(item), item]));
  let total = 0;
  let matched = false;
  for (const item of after) {
    const prev = earlier.get(key(item));
    if (!prev) continue;
    const a = field(prev);
    const b = field(item);
    if (a === null || b === null || b < a) continue;
    total += b - a;
    matched = true;
  }
  return matched ? total / seconds : null;
}

/** The sample between two readings of one guest (prev null: the levels only, rates unknown). */
export function guestSample(prev: GuestReading | null, next: GuestReading, hostCores: number): GuestSample {
  const seconds = prev ? (next.at - prev.at) / 1000 : 0;
  const usable = prev !== null && seconds > 0;
  const vcpuDelta = usable && prev.vcpuSeconds.length === next.vcpuSeconds.length ? sum(next.vcpuSeconds) - sum(prev.vcpuSeconds) : null;
  const processDelta = usable ? next.processSeconds - prev.processSeconds : null;
  const disk = (field: (d: GuestReading["disks"][number]) => number) =>
    usable ? ratePerSecond(prev.disks, next.disks, (d) => d.volume, field, seconds) : null;
  const nic = (field: (c: NonNullable<GuestReading["nics"][number]["counters"]>) => number) =>
    usable ? ratePerSecond(prev.nics, next.nics, (n) => n.mac, (n) => (n.counters ? field(n.counters) : null), seconds) : null;
  const stall = (which: "cpu" | "memory" | "io") =>
    usable && prev.pressure && next.pressure && next.pressure[which] >= prev.pressure[which] ? Math.min(100, ((next.pressure[which] - prev.pressure[which]) / seconds) * 100) : null;
  const diskWaitSeconds = disk((d) => d.readSeconds + d.writeSeconds);
  const rxDrops = nic((c) => c.rxDropped);
  const txDrops = nic((c) => c.txDropped);
  return {
    cpu: vcpuDelta !== null && vcpuDelta >= 0 && next.vcpus > 0 ? Math.min(100, (vcpuDelta / seconds / next.vcpus) * 100) : null,
    hostCpu: processDelta !== null && processDelta >= 0 && hostCores > 0 ? Math.min(100, (processDelta / seconds / hostCores) * 100) : null,
    rss: next.rss,
    memTotal: next.guestMemory?.total ?? null,
    memAvailable: next.guestMemory?.available ?? null,
    diskRead: disk((d) => d.readBytes),
    diskWrite: disk((d) => d.writeBytes),
    diskReadOps: disk((d) => d.readOps),
    diskWriteOps: disk((d) => d.writeOps),
    diskWait: diskWaitSeconds === null ? null : diskWaitSeconds * 1000,
    netRx: nic((c) => c.rxBytes),
    netTx: nic((c) => c.txBytes),
    netRxPackets: nic((c) => c.rxPackets),
    netTxPackets: nic((c) => c.txPackets),
    netDrops: rxDrops === null && txDrops === null ? null : (rxDrops ?? 0) + (txDrops ?? 0),
    psiCpu: stall("cpu"),
    psiMemory: stall("memory"),
    psiIo: stall("io"),
  };
}

/** The host's sample between two readings. */
export function hostSample(prev: HostReading | null, next: HostReading): HostSample {
  const ticks = prev ? next.cpuTicks.total - prev.cpuTicks.total : 0;
  return {
    cpu: prev && ticks > 0 ? Math.min(100, ((next.cpuTicks.busy - prev.cpuTicks.busy) / ticks) * 100) : null,
    memUsed: next.memTotal - next.memAvailable,
    memTotal: next.memTotal,
    load1: next.load[0],
    guests: next.guests,
    vcpus: next.vcpus,
    memAllocated: next.memAllocated,
  };
}

/**
 * A tap's counters turned to the guest's point of view: what the host's end of the tap
 * transmits, the guest receives, and the other way round.
 */
export function guestSideOfTap(tap: { rxBytes: number; rxPackets: number; rxDropped: number; txBytes: number; txPackets: number; txDropped: number }) {
  return {
    rxBytes: tap.txBytes,
    rxPackets: tap.txPackets,
    rxDropped: tap.txDropped,
    txBytes: tap.rxBytes,
    txPackets: tap.rxPackets,
    txDropped: tap.rxDropped,
  };
}
