/**
 * The agent's metrics against a real demo guest (QEMU under TCG or KVM): CPU from the
 * vCPU threads, memory from /proc and the balloon, disk counters from QMP, pressure from
 * the guest's own cgroup, the ring the web fetches, and the live samples. The guest's
 * serial shell makes the load (a busy loop, a 64 MiB write) the figures must show.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import type { GuestCurrent, MetricsTick } from "../../server/domain/metrics";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { SerialShell } from "../helpers/serial-shell";
import { createTestImage, testDisk, testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const TEST_TIMEOUT_MS = 240_000;
const INTERVAL_MS = 1000;
const MiB = 2 ** 20;

story("metrics of a real guest, from the agent", (step) => {
  let agent: TestAgent;
  let shell: SerialShell;
  const spec = testSpec("guestmetr001", {
    memoryMiB: 256,
    disks: [testDisk("volmetr00001", "qcow2")],
    nics: [{ mac: "52:54:00:ab:cd:71", model: "virtio", mode: "user", isolated: true, forwards: [] }],
  });
  /** Regular ticks from the agent's ring, newest last. */
  const ticks = async (): Promise<MetricsTick[]> => (await agent.client.metrics()).ticks;
  const current = async (): Promise<GuestCurrent | undefined> => (await agent.client.metricsCurrent()).guests.find((g) => g.id === spec.id);

  before(async () => {
    agent = await startTestAgent({ GUESTHOUSE_METRICS_INTERVAL_MS: String(INTERVAL_MS) });
    await createTestImage(agent.client, "volmetr00001", "qcow2", 1);
    await agent.client.start(spec);
    shell = await SerialShell.open(agent, spec.id);
  });
  after(async () => {
    shell?.close();
    await agent?.cleanup();
  });

  step("a busy loop shows its one vCPU near 100 % within 20 s, and near 0 once it stops", { timeout: TEST_TIMEOUT_MS }, async () => {
    await shell.run("while :; do :; done & echo $! > /tmp/busy");
    const busy = await waitFor(
      "a sample with the vCPU near 100 %",
      async () => {
        const last = (await ticks()).slice(-2).map((t) => t.guests[spec.id]?.cpu ?? 0);
        return last.length === 2 && last.every((cpu) => cpu >= 80) ? last : null;
      },
      20_000,
      250,
    );
    assert.ok(busy.every((cpu) => cpu <= 100), `never above 100 %: ${busy}`);
    const sample = (await ticks()).at(-1)!.guests[spec.id]!;
    assert.ok(sample.hostCpu! > 0, "the QEMU process's share of the host is counted too");

    await shell.run("kill $(cat /tmp/busy)");
    const idle = await waitFor(
      "samples with the vCPU near 0 %",
      async () => {
        const last = (await ticks()).slice(-2).map((t) => t.guests[spec.id]?.cpu ?? 100);
        return last.length === 2 && last.every((cpu) => cpu <= 15) ? last : null;
      },
      20_000,
      250,
    );
    assert.ok(idle.every((cpu) => cpu >= 0));
  });

  step("memory: QEMU's resident size, the configured size, and the guest's own view through its balloon", { timeout: TEST_TIMEOUT_MS }, async () => {
    const guest = await waitFor("the balloon's first report", async () => {
      const g = await current();
      return g?.guestMemory ? g : null;
    }, 30_000, 250);
    assert.equal(guest.memory, 256 * MiB);
    assert.ok(guest.rss > 16 * MiB && guest.rss < 1024 * MiB, `QEMU's resident memory is plausible: ${guest.rss}`);
    const { total, available, free } = guest.guestMemory!;
    assert.ok(total > 128 * MiB && total <= 256 * MiB, `the guest sees about its 256 MiB: ${total}`);
    assert.ok(available <= total && free <= total && available > 0);
    assert.equal(guest.sample.memTotal, total);
  });

  step("writing 64 MiB to its disk moves the disk counters and the samples by that much (±10 %)", { timeout: TEST_TIMEOUT_MS }, async () => {
    const before = (await current())!.disks.find((d) => d.volume === "volmetr00001")!;
    const fromSeq = (await ticks()).at(-1)!.seq;
    await shell.run("dd if=/dev/urandom of=/dev/vda bs=1M count=64 conv=fsync 2>/dev/null; echo written", 120_000);
    // The counters: exactly what QEMU wrote for the guest.
    const doneAt = Date.now();
    const done = await waitFor("the writes in the counters", async () => {
      const disk = (await current())?.disks.find((d) => d.volume === "volmetr00001");
      return disk && disk.writeBytes - before.writeBytes >= 64 * MiB ? disk : null;
    }, 20_000, 250);
    const written = done.writeBytes - before.writeBytes;
    assert.ok(Math.abs(written - 64 * MiB) <= 6.4 * MiB, `the counters moved by ${written} bytes`);
    assert.ok(done.writeOps > before.writeOps && done.writeSeconds > before.writeSeconds);
    assert.ok(done.allocatedBytes! - (before.allocatedBytes ?? 0) >= 60 * MiB, `the image grew on the host: ${before.allocatedBytes} → ${done.allocatedBytes}`);
    // The samples: rates over each interval add up to the same bytes.
    const lastSeq = await waitFor("a tick after the write", async () => {
      const t = await ticks();
      const settled = t.filter((x) => x.seq > fromSeq);
      return settled.length >= 2 && settled.at(-1)!.at > doneAt + INTERVAL_MS ? t.at(-1)!.seq : null;
    }, 20_000, 250);
    const span = (await ticks()).filter((t) => t.seq >= fromSeq && t.seq <= lastSeq);
    let bytes = 0;
    for (let i = 1; i < span.length; i++) bytes += (span[i]!.guests[spec.id]?.diskWrite ?? 0) * ((span[i]!.at - span[i - 1]!.at) / 1000);
    assert.ok(Math.abs(bytes - 64 * MiB) <= 6.4 * MiB, `the samples add up to ${Math.round(bytes / MiB)} MiB`);
  });

  step("a user-mode card has no counters on the host, and says so", async () => {
    const nic = (await current())!.nics[0]!;
    assert.equal(nic.counters, null);
    assert.match(nic.why ?? "", /user-mode networking runs inside QEMU/i);
    assert.equal((await ticks()).at(-1)!.guests[spec.id]!.netRx, null, "no network rate rather than a made-up 0");
  });

  step("pressure comes from the guest's own cgroup where the host has cgroup v2, and is said unavailable where not", async () => {
    const { host, guests } = await agent.client.metricsCurrent();
    const guest = guests.find((g) => g.id === spec.id)!;
    const { pid } = await agent.client.guest(spec.id);
    const cgroup = findCgroupOf(pid!);
    if (host.pressureUnavailable === null) {
      assert.ok(cgroup?.endsWith(`/${spec.id}`), `QEMU runs in a cgroup of its own: ${cgroup}`);
      assert.ok(guest.pressure && guest.pressure.cpu >= 0 && guest.pressure.io >= 0);
      const sample = (await ticks()).at(-1)!.guests[spec.id]!;
      for (const v of [sample.psiCpu, sample.psiMemory, sample.psiIo]) assert.ok(v !== null && v >= 0 && v <= 100, `a share of the time: ${v}`);
    } else {
      assert.equal(guest.pressure, null);
      assert.match(host.pressureUnavailable, /cgroup|PSI|root/);
    }
  });

  step("the host: CPU, memory, load, each storage folder's space, and what running guests were given", async () => {
    const { host } = await agent.client.metricsCurrent();
    assert.ok(host.cores >= 1 && host.memTotal > host.memAvailable && host.memAvailable > 0);
    const folder = host.folders.find((f) => f.pool === "default")!;
    const fsStat = fs.statfsSync(path.join(agent.dataDir, "disks"));
    assert.equal(folder.totalBytes, fsStat.blocks * fsStat.bsize);
    assert.ok(folder.freeBytes <= folder.totalBytes);
    const tick = (await ticks()).at(-1)!;
    assert.equal(tick.host.guests, 1);
    assert.equal(tick.host.vcpus, 1);
    assert.equal(tick.host.memAllocated, 256 * MiB);
    assert.ok(tick.host.cpu! >= 0 && tick.host.cpu! <= 100);
  });

  step("the ring: a later ask gets only newer ticks; another boot's number gets all it keeps", async () => {
    const all = await agent.client.metrics();
    const last = all.ticks.at(-1)!.seq;
    const newer = await waitFor("a newer tick", async () => {
      const b = await agent.client.metrics(all.boot, last);
      return b.ticks.length ? b : null;
    }, 10_000, 200);
    assert.ok(newer.ticks.every((t) => t.seq > last));
    const other = await agent.client.metrics("another-boot", last);
    assert.ok(other.ticks.length >= all.ticks.length, "another boot's tick number means nothing here");
    assert.equal(other.intervalMs, INTERVAL_MS);
  });

  step("live samples: asking for a guest reads it every second while asked", { timeout: 60_000 }, async () => {
    const since = Date.now();
    const live = await waitFor("three live samples", async () => {
      const samples = await agent.client.metricsLive(spec.id, since);
      return samples.filter((s) => s.at > since).length >= 3 ? samples : null;
    }, 15_000, 300);
    assert.ok(live.every((s) => s.sample.cpu !== null));
    await assert.rejects(agent.client.metricsLive("guestnone001", 0), /not running/);
  });

  step("an agent restarted starts a new boot and keeps sampling the guest it adopted", { timeout: 60_000 }, async () => {
    const before = await agent.client.metrics();
    await agent.kill();
    await agent.restart();
    const after = await waitFor("a tick of the adopted guest", async () => {
      const b = await agent.client.metrics(before.boot, before.ticks.at(-1)!.seq);
      return b.ticks.some((t) => t.guests[spec.id]?.cpu != null) ? b : null;
    }, 20_000, 250);
    assert.notEqual(after.boot, before.boot);
  });
});

/** The cgroup v2 path a process is in (/proc/<pid>/cgroup's "0::" line), or null. */
function findCgroupOf(pid: number): string | null {
  const line = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => l.startsWith("0::"));
  return line ? line.slice(3) : null;
}
