/**
 * The agent's metrics arithmetic: the kernel's formats parsed as they are written, two
 * readings turned into rates, counters that went backwards left out, and a tap's counters
 * turned to the guest's point of view.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { guestSample, guestSideOfTap, hostSample, type GuestReading, type HostReading } from "../../server/agent/metrics/rates";
import { cgroup2Mount } from "../../server/agent/cgroups";
import {
  cpuTicksOfStat,
  guestMemoryOfBalloon,
  parseLoadavg,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
  residentPagesOfStatm,
  someStallOfPressure,
} from "../../server/agent/metrics/readings";

test("a stat line's CPU time counts fields after the command name, whatever it holds", () => {
  // A thread named "CPU 0/TCG" (spaces and a slash), then state R: utime 1200, stime 34.
  const line = "4242 (CPU 0/TCG) R 1 4242 4242 0 -1 4194624 100 0 0 0 1200 34 0 0 20 0 3 0 100 0 0";
  assert.equal(cpuTicksOfStat(line), 1234);
  assert.equal(cpuTicksOfStat("7 (a) b) (c) S 1 7 7 0 -1 0 0 0 0 0 5 6 0 0"), 11, "a name with ') (' in it");
  assert.throws(() => cpuTicksOfStat("garbage"));
});

test("/proc files: statm, /proc/stat, meminfo, loadavg, pressure", () => {
  assert.equal(residentPagesOfStatm("12345 678 90 1 0 2 0\n"), 678);
  const stat = parseProcStat("cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n");
  assert.deepEqual(stat, { busy: 100 + 5 + 50 + 3 + 2 + 10, total: 170 + 800 + 20 });
  assert.deepEqual(parseMeminfo("MemTotal:       16000 kB\nMemFree:  100 kB\nMemAvailable:    4000 kB\n"), { total: 16000 * 1024, available: 4000 * 1024 });
  assert.deepEqual(parseLoadavg("0.52 0.40 0.33 2/345 6789\n"), [0.52, 0.4, 0.33]);
  assert.equal(someStallOfPressure("some avg10=0.24 avg60=0.74 avg300=4.84 total=6837213029\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"), 6837213029);
  assert.throws(() => someStallOfPressure(""));
});

test("/proc/net/dev: each interface's receive and transmit counters", () => {
  const text = [
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
    "ghtabc123: 1000 10 0 1 0 0 0 0 5000 50 0 2 0 0 0 0",
    "    lo: 7 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0",
  ].join("\n");
  const counters = parseNetDev(text);
  assert.deepEqual(counters.get("ghtabc123"), { rxBytes: 1000, rxPackets: 10, rxDropped: 1, txBytes: 5000, txPackets: 50, txDropped: 2 });
  assert.equal(counters.get("lo")?.txBytes, 7);
});

test("a tap's counters are turned round: what the host's end sends, the guest receives", () => {
  // The host's end of the tap transmitted 5000 bytes (to the guest) and received 1000 (from it).
  const guest = guestSideOfTap({ rxBytes: 1000, rxPackets: 10, rxDropped: 1, txBytes: 5000, txPackets: 50, txDropped: 2 });
  assert.deepEqual(guest, { rxBytes: 5000, rxPackets: 50, rxDropped: 2, txBytes: 1000, txPackets: 10, txDropped: 1 });
});

test("the balloon's guest-stats: the guest's view, or null before its driver reports or when it leaves figures out", () => {
  const unknown = 18446744073709552000;
  assert.equal(guestMemoryOfBalloon({ stats: { "stat-total-memory": unknown }, "last-update": 0 }), null);
  assert.equal(guestMemoryOfBalloon(null), null);
  assert.deepEqual(
    guestMemoryOfBalloon({ stats: { "stat-total-memory": 200, "stat-free-memory": 50, "stat-available-memory": 120 }, "last-update": 17 }),
    { total: 200, free: 50, available: 120 },
  );
  // An old driver without "available": the free memory stands in.
  assert.deepEqual(guestMemoryOfBalloon({ stats: { "stat-total-memory": 200, "stat-free-memory": 50, "stat-available-memory": unknown }, "last-update": 3 }), {
    total: 200,
    free: 50,
    available: 50,
  });
});

const reading = (at: number, over: Partial<GuestReading> = {}): GuestReading => ({
  id: "g1",
  at,
  vcpus: 2,
  memory: 1 << 30,
  vcpuSeconds: [0, 0],
  processSeconds: 0,
  rss: 100,
  guestMemory: null,
  disks: [],
  nics: [],
  pressure: null,
  ...over,
});
const disk = (volume: string, writeBytes: number) => ({ volume, readBytes: 0, writeBytes, readOps: 0, writeOps: 0, readSeconds: 0, writeSeconds: 0, allocatedBytes: null });

test("two readings: CPU as a share of the guest's vCPUs and of the host, rates per second", () => {
  const a = reading(0, { vcpuSeconds: [10, 20], processSeconds: 40, disks: [disk("v1", 1000)], pressure: { cpu: 1, memory: 0, io: 2 } });
  // 10 s later: vCPU 0 busy the whole time, vCPU 1 idle; the process also spent 5 s elsewhere.
  const b = reading(10_000, { vcpuSeconds: [20, 20], processSeconds: 55, disks: [disk("v1", 51_000)], pressure: { cpu: 3, memory: 0, io: 2.5 } });
  const s = guestSample(a, b, 4);
  assert.equal(s.cpu, 50, "one of two vCPUs busy");
  assert.equal(s.hostCpu, 37.5, "15 s of CPU in 10 s on 4 cores");
  assert.equal(s.diskWrite, 5000);
  assert.equal(s.psiCpu, 20);
  assert.equal(s.psiIo, 5);
  assert.equal(s.netRx, null, "no card: no network rate");
  assert.equal(s.memTotal, null, "no balloon report: no guest view");
});

test("a first reading gives levels but no rates; a counter that went backwards is left out, not negative", () => {
  const first = guestSample(null, reading(0, { rss: 500 }), 4);
  assert.equal(first.cpu, null);
  assert.equal(first.rss, 500);
  const a = reading(0, { disks: [disk("v1", 9000), disk("v2", 100)] });
  // v1 was plugged out and in again (its counters started over); v2 wrote 1000 bytes in 1 s.
  const b = reading(1000, { disks: [disk("v1", 10), disk("v2", 1100)] });
  assert.equal(guestSample(a, b, 1).diskWrite, 1000);
});

test("the host: busy share of all ticks, memory in use, what running guests were given", () => {
  const host = (at: number, busy: number, total: number): HostReading => ({
    at,
    cores: 2,
    cpuBusySeconds: busy / 100,
    cpuTicks: { busy, total },
    memTotal: 1000,
    memAvailable: 300,
    load: [1.5, 1, 0.5],
    folders: [],
    pressureUnavailable: null,
    guests: 2,
    vcpus: 3,
    memAllocated: 768,
  });
  const s = hostSample(host(0, 100, 1000), host(1000, 150, 1200));
  assert.equal(s.cpu, 25);
  assert.equal(s.memUsed, 700);
  assert.deepEqual([s.load1, s.guests, s.vcpus, s.memAllocated], [1.5, 2, 3, 768]);
  assert.equal(hostSample(null, host(0, 1, 2)).cpu, null);
});

test("the cgroup v2 mount is found in mountinfo, on hybrid and unified hosts", () => {
  assert.equal(cgroup2Mount("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"), "/sys/fs/cgroup/unified");
  assert.equal(cgroup2Mount("30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"), "/sys/fs/cgroup");
  assert.equal(cgroup2Mount("30 25 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"), null);
});
