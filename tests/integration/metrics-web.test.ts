/**
 * The web's half of the metrics with a real database and a real agent: the collector
 * keeps a running guest's and the host's samples in the history (64 MiB written show as 64
 * MiB in the disk graph); the history survives the
 * guest stopped and started, the agent restarted and a new collector (the web restarted)
 * without a point twice; "top consumers" shows each caller only the guests they may see;
 * thresholds per team fire exactly while the figures cross them, and only owners set them.
 */
import assert from "node:assert/strict";
import { after, before } from "node:test";
import type { SessionUser } from "../../server/auth/sessions";
import { GUEST_FIELDS, HOST_FIELDS, type GuestSample, type HostSample, type MetricsTick } from "../../server/domain/metrics";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { SerialShell } from "../helpers/serial-shell";
import { createTestDb, twoTeams, useAsProcessDatabase, type TestDb } from "../helpers/db";
import { testDefinition } from "../helpers/specs";
import { story } from "../helpers/story";

const refused = (code: string, text?: RegExp) => (err: Error & { code?: string }) => err.code === code && (!text || text.test(err.message));
const MiB = 2 ** 20;

story("metrics through the web: history, top consumers, thresholds", (step) => {
  let agent: TestAgent;
  let database: TestDb;
  let member: SessionUser;
  let viewer: SessionUser;
  let stranger: SessionUser;
  let admin: SessionUser;
  let hostId = "";
  let guestId = "";
  let ops: typeof import("../../server/web/guest-ops");
  let power: typeof import("../../server/web/power");
  let views: typeof import("../../server/web/metrics/views");
  let thresholds: typeof import("../../server/web/metrics/thresholds");
  let store: typeof import("../../server/web/metrics/store");
  let Collector: typeof import("../../server/web/metrics/collector").MetricsCollector;

  /** The points of the guest's last hour that have a CPU figure. */
  const cpuPoints = async () => {
    const series = await views.guestHistory(member, guestId, "hour");
    return series.t.filter((_, i) => series.fields.cpu.avg[i] !== null);
  };

  before(async () => {
    // The agent samples every 10 s as in production: one sample per 10 s bucket, so the
    // disk graph's rates times 10 s add up to the bytes written.
    agent = await startTestAgent();
    database = await createTestDb();
    useAsProcessDatabase(database);
    ops = await import("../../server/web/guest-ops");
    power = await import("../../server/web/power");
    views = await import("../../server/web/metrics/views");
    thresholds = await import("../../server/web/metrics/thresholds");
    store = await import("../../server/web/metrics/store");
    Collector = (await import("../../server/web/metrics/collector")).MetricsCollector;
    const db = database.db;
    hostId = (await db.host.create({ data: { name: "local", endpoint: `unix:${agent.socketPath}` } })).id;
    await db.isoImage.create({ data: { hostId, name: "demo.iso", sizeBytes: 1n } });
    ({ member, viewer, stranger, admin } = await twoTeams(db));
  });
  after(async () => {
    if (guestId) await agent?.client.forceOff(guestId).catch(() => {});
    await agent?.cleanup();
    await database?.cleanup();
  });

  step("the collector keeps a running guest's samples and the host's in the history", { timeout: 180_000 }, async () => {
    ({ id: guestId } = await ops.createGuest(member, testDefinition("busy", [1], { cdroms: [{ iso: "demo.iso" }], bootOrder: ["cdrom"] })));
    await power.powerGuest(member, guestId, "start");
    const collector = new Collector(1000);
    await waitFor("three CPU points of the guest in the history", async () => {
      await collector.pollAll();
      return (await cpuPoints()).length >= 3 ? true : null;
    }, 90_000, 1000);
    const host = await views.hostHistory(admin, hostId, "hour");
    assert.ok(host.t.length >= 3, "the host's points too");
    const last = host.fields.guests.avg.at(-1);
    assert.equal(last, 1, "one running guest");
    const day = await views.guestHistory(member, guestId, "day");
    assert.equal(day.resolution, 60);
    await assert.rejects(views.guestHistory(stranger, guestId, "hour"), refused("not-found"));
    await assert.rejects(views.hostHistory(member, hostId, "hour"), refused("forbidden", /admins/));
  });

  step("writing 64 MiB to its disk moves the disk graph by that much (±10 %)", { timeout: 240_000 }, async () => {
    const shell = await SerialShell.open(agent, guestId);
    try {
      const collector = new Collector(1000);
      const writes = async () => {
        await collector.pollAll();
        const series = await views.guestHistory(member, guestId, "hour");
        // Each 10 s point is the rate over the 10 s before its sample: times 10 s, the bytes.
        return series.fields.diskWrite.avg.reduce<number>((sum, rate) => sum + (rate ?? 0) * series.resolution, 0);
      };
      const before = await writes();
      await shell.run("dd if=/dev/urandom of=/dev/vda bs=1M count=64 conv=fsync 2>/dev/null; echo written", 120_000);
      // Wait until two samples after the write are in, then the graph has all of it.
      const doneAt = Date.now();
      await waitFor("two points after the write", async () => {
        await collector.pollAll();
        const series = await views.guestHistory(member, guestId, "hour");
        return series.t.filter((t) => t * 1000 > doneAt).length >= 2 ? true : null;
      }, 60_000, 1000);
      const moved = (await writes()) - before;
      assert.ok(Math.abs(moved - 64 * MiB) <= 6.4 * MiB, `the graph moved by ${(moved / MiB).toFixed(1)} MiB`);
    } finally {
      shell.close();
    }
  });

  step("a guest stopped and started keeps its history", { timeout: 180_000 }, async () => {
    const collector = new Collector(1000);
    await collector.pollAll();
    const before = await cpuPoints();
    await power.powerGuest(member, guestId, "force-off");
    await power.powerGuest(member, guestId, "start");
    await waitFor("new points after the start", async () => {
      await collector.pollAll();
      const now = await cpuPoints();
      return now.at(-1)! > before.at(-1)! + 10 ? true : null;
    }, 90_000, 1000);
    const after = await cpuPoints();
    for (const t of before) assert.ok(after.includes(t), `the point at ${t} is still there`);
  });

  step("an agent restarted and a web restarted (a new collector) keep the history, and no point is stored twice", { timeout: 180_000 }, async () => {
    const first = new Collector(1000);
    await first.pollAll();
    const before = await cpuPoints();
    await agent.kill();
    await agent.restart();
    const second = new Collector(1000);
    await waitFor("points of the new agent", async () => {
      await second.pollAll();
      return (await cpuPoints()).at(-1)! > before.at(-1)! + 10 ? true : null;
    }, 90_000, 1000);
    // A web that starts again asks for all the agent keeps: what it had stays once.
    await new Collector(1000).pollAll();
    const after = await cpuPoints();
    for (const t of before) assert.ok(after.includes(t));
    assert.equal(new Set(after).size, after.length, "each bucket once");
  });

  step("two web processes on one database collect a host once: only the lease's holder writes; a lapsed lease goes to the other; a lease taken back after the agent restarted reads the history again, so nothing is lost or stored twice", { timeout: 180_000 }, async () => {
    const leases = await import("../../server/db/leases");
    const lease = `metrics:${hostId}`;
    const holderNow = async () => (await database.db.lease.findUnique({ where: { name: lease } }))?.holder ?? null;
    // The steps before collected as this process; as a stopping web would, it gives the lease up.
    await leases.releaseLease(database.db, lease, leases.PROCESS_HOLDER);
    /** A web process's own store (its own caches on the shared database), counting its writes. */
    class CountingStore extends store.MetricStore {
      writes = 0;
      override recordTicks(...args: Parameters<InstanceType<typeof store.MetricStore>["recordTicks"]>) {
        this.writes++;
        return super.recordTicks(...args);
      }
    }
    const stores = [new CountingStore(database.db), new CountingStore(database.db)] as const;
    const one = new Collector(1000, { holder: "web-one", leaseMs: 60_000, store: stores[0] });
    // The second's lease lasts 6 s: it lapses while the second stands still (a web that hangs).
    const two = new Collector(1000, { holder: "web-two", leaseMs: 6_000, store: stores[1] });
    const newPoints = async (collectors: Array<InstanceType<typeof Collector>>, after: number) =>
      waitFor("new points", async () => {
        await Promise.all(collectors.map((c) => c.pollAll()));
        return (await cpuPoints()).at(-1)! > after ? true : null;
      }, 60_000, 1000);
    const first = (await cpuPoints()).at(-1)!;

    // The second asks first and holds it; both poll, only it writes.
    await two.pollAll();
    assert.equal(await holderNow(), "web-two");
    await newPoints([one, two], first + 10);
    assert.ok(stores[1].writes >= 1, `the holder wrote ${stores[1].writes} times`);
    assert.equal(stores[0].writes, 0, "the other wrote nothing");

    // The second stands still; its lease runs out and the first takes the host and writes.
    await waitFor("the first to take the lapsed lease", async () => {
      await one.pollAll();
      return (await holderNow()) === "web-one" ? true : null;
    }, 20_000, 500);
    const taken = (await cpuPoints()).at(-1)!;
    await newPoints([one], taken + 10);
    assert.ok(stores[0].writes >= 1);

    // The agent restarts (a new boot: the first's points are no longer in its ring), the first
    // stops (a web shut down: its lease goes at once), and the second takes the host back. Its
    // write cache is from before the first's points: it must read them again from the
    // database, not write its stale newest chunk over them.
    await agent.kill();
    await agent.restart();
    await one.stop();
    assert.equal(await holderNow(), null);
    const handedOver = await cpuPoints();
    await newPoints([two], handedOver.at(-1)! + 10);
    assert.equal(await holderNow(), "web-two");
    const after = await cpuPoints();
    for (const t of handedOver) assert.ok(after.includes(t), `the point at ${t} is still there`);
    assert.equal(new Set(after).size, after.length, "each bucket once");
    // Every tick the agent (its new boot) sampled is in the history (none lost at the hand-over).
    const ticks = (await agent.client.metrics()).ticks.filter((t) => t.guests[guestId]?.cpu !== null && t.guests[guestId] !== undefined);
    const sampled = [...new Set(ticks.map((t) => Math.floor(t.at / 10_000) * 10).filter((b) => b > first && b <= after.at(-1)!))];
    assert.deepEqual(sampled.filter((b) => !after.includes(b)), [], "buckets the agent sampled but the history lacks");
    await two.stop();
  });

  step("top consumers: each caller sees only the guests they may see, ranked by the figure asked for", async () => {
    const mine = await views.topConsumers(member, "cpu", "now");
    assert.deepEqual(mine.map((r) => r.id), [guestId]);
    assert.equal(mine[0]!.running, true);
    assert.ok(mine[0]!.figures.rss! > 16 * MiB);
    assert.deepEqual(await views.topConsumers(stranger, "cpu", "now"), [], "another team's guest is not there");
    const hour = await views.topConsumers(admin, "rss", "hour");
    assert.equal(hour[0]!.id, guestId);
    assert.ok(hour[0]!.peaks.rss! >= hour[0]!.figures.rss!, "the peak is at least the average");
  });

  step("thresholds: only owners set them, bad ones are refused with why and change nothing", async () => {
    const team = (await database.db.guest.findUniqueOrThrow({ where: { id: guestId } })).teamId;
    const good = { "guest-cpu": { percent: 80, minutes: 1 }, "guest-memory": { percent: 50, minutes: 1 }, "folder-space": { percent: 1 } };
    await assert.rejects(thresholds.setTeamThresholds(member, team, good), refused("forbidden", /owners/));
    await assert.rejects(thresholds.setTeamThresholds(stranger, team, good), refused("forbidden"));
    await assert.rejects(thresholds.setTeamThresholds(admin, team, { ...good, "guest-cpu": { percent: 0, minutes: 1 } }), refused("invalid-input", /at least 1 %/));
    await assert.rejects(thresholds.setTeamThresholds(admin, team, { ...good, "guest-cpu": { percent: 90, minutes: 5000 } }), refused("invalid-input", /at most 1440 \(24 hours/));
    // Digits as a form sends them are numbers; nothing else is coerced.
    for (const percent of [true, "0x10", "1e1", [90], ""]) {
      await assert.rejects(thresholds.setTeamThresholds(admin, team, { ...good, "folder-space": { percent } }), refused("invalid-input", /folder-space\.percent: A threshold must be a whole number/), JSON.stringify(percent));
    }
    assert.equal(await database.db.metricThreshold.count(), 0, "nothing was kept of the refusals");
    const set = await thresholds.setTeamThresholds(admin, team, good);
    assert.deepEqual(set["folder-space"], { percent: 1, minutes: 0 });
    assert.deepEqual((await thresholds.thresholdsOf([team])).get(team), set);
  });

  step("thresholds fire exactly while the figures cross them: CPU for the whole window, memory, a full storage folder", async () => {
    // Guests of alpha that never ran: their history written as the agent would have sampled it.
    const made = async (name: string) => (await ops.createGuest(member, testDefinition(name, [], { memoryMiB: 256 }))).id;
    const [dipped, steady, fresh] = [await made("dipped"), await made("steady"), await made("fresh")];
    const now = Date.now();
    const sample = (over: Partial<GuestSample>): GuestSample => ({ ...(Object.fromEntries(GUEST_FIELDS.map((f) => [f, null])) as GuestSample), ...over });
    const host = Object.fromEntries(HOST_FIELDS.map((f) => [f, 1])) as HostSample;
    const ticks = (id: string, cpu: (i: number) => number, count: number): MetricsTick[] =>
      Array.from({ length: count }, (_, i) => ({ seq: i + 1, at: now - (count - i) * 10_000, host, guests: { [id]: sample({ cpu: cpu(i), rss: 200 * MiB }) } }));
    // Two minutes at 95 %, but one dip to 50 % 20 s ago: not "above 80 % for a minute".
    await store.recordTicks(hostId, ticks(dipped, (i) => (i === 10 ? 50 : 95), 12), new Set([dipped]));
    // Two minutes at 95 %: above for the whole minute.
    await store.recordTicks(hostId, ticks(steady, () => 95, 12), new Set([steady]));
    // 95 % for the last 30 s only: it has not been busy for a minute yet.
    await store.recordTicks(hostId, ticks(fresh, () => 95, 3), new Set([fresh]));
    const alerts = await thresholds.guestAlerts(member, [dipped, steady, fresh, guestId]);
    const kinds = (id: string) => (alerts.get(id) ?? []).map((a) => a.kind).sort();
    assert.deepEqual(kinds(dipped), ["guest-memory"], "a dip in the window: no CPU alert; 200 of 256 MiB held is above 50 %");
    assert.match(alerts.get(dipped)![0]!.message, /of its configured size/, "no balloon view: QEMU's resident share");
    assert.deepEqual(kinds(steady), ["guest-cpu", "guest-memory"]);
    assert.equal(alerts.get(steady)!.find((a) => a.kind === "guest-cpu")!.label, "CPU 95 %");
    assert.deepEqual(kinds(fresh), [], "a window not yet covered fires nothing");
    // The running guest's disk is in the default folder, which is fuller than 1 %.
    const folder = alerts.get(guestId)?.find((a) => a.kind === "folder-space");
    assert.match(folder?.label ?? "", /^default \d+ % full$/);
    assert.equal((await thresholds.guestAlerts(stranger, [dipped, steady, guestId])).size, 0, "another team's guests are ignored");
    const hostAlerts = await thresholds.hostAlerts(admin, hostId);
    assert.ok(hostAlerts.some((a) => a.subject === "default" && /alpha/.test(a.message)));
    await assert.rejects(thresholds.hostAlerts(viewer, hostId), refused("forbidden"));
  });
});
