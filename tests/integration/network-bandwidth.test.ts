/**
 * A card's bandwidth limits on a managed network, with a real agent and a demo guest in a
 * network namespace the test makes: what reaches the guest is shaped on its tap (a tbf
 * queue), what it sends is policed by the network's nftables rules (this kernel cannot
 * shape a device's input). The assertions are lower bounds on time, which a busy host can
 * only make longer: the shaped way at the limit (less its burst), the policed way at twice
 * it (a policer drops what goes over and TCP overshoots before it slows: about 1.6× here
 * for 1 Mbit/s). The agent's metrics count both transfers on the guest's side of its tap
 * (what the host's end sends, the guest receives).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import type { ManagedNicSpec } from "../../server/domain/types";
import { tableName } from "../../server/agent/networks/nft";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { Namespaces } from "../helpers/netns";
import { BOOT_TIMEOUT_MS, SerialShell } from "../helpers/serial-shell";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const KIB = 1024;

story("a card's bandwidth limits, the agent in a network namespace", (step) => {
  const ns = new Namespaces();
  let inside = "";
  let agent: TestAgent;
  let shell: SerialShell | null = null;
  const card: ManagedNicSpec = { mac: "52:54:00:93:00:01", model: "virtio", mode: "managed", network: "slow", bandwidth: { inMbit: 2, outMbit: 1 }, isolated: false, forwards: [] };
  const guest = testSpec("guestbw000001", { name: "slow-1", memoryMiB: 160, nics: [card] });
  /** The card's counters in the agent's metrics (read after now), as the guest sees them (its tap's turned round). */
  const cardCounters = async () => {
    const asked = Date.now();
    const current = await waitFor("a metrics reading after now", async () => {
      const g = (await agent.client.metricsCurrent()).guests.find((x) => x.id === guest.id);
      return g && g.at > asked ? g : null;
    }, 10_000, 200);
    const counters = current.nics.find((n) => n.mac === card.mac)?.counters;
    assert.ok(counters, `the card has counters: ${JSON.stringify(current.nics)}`);
    return counters;
  };
  const dropped = (comment: string) =>
    [...ns.run(inside, "nft", "list", "table", "bridge", tableName("slow")).matchAll(new RegExp(`packets (\\d+) bytes \\d+ drop comment "${comment}"`, "g"))].reduce((n, m) => n + Number(m[1]), 0);

  before(async () => {
    inside = ns.add("bw");
    agent = await startTestAgent({ GUESTHOUSE_METRICS_INTERVAL_MS: "1000" }, { netns: inside });
  });
  after(async () => {
    shell?.close();
    await agent?.client.forceOff(guest.id).catch(() => {});
    await agent?.cleanup();
    ns.cleanup();
  });

  step("a guest with limits starts and takes its lease; its tap is shaped, its policer is in the network's rules", { timeout: BOOT_TIMEOUT_MS * 2 }, async () => {
    await agent.client.applyNetwork("slow", { kind: "nat", subnet: "10.93.0.0/24", dhcp: "auto", domain: "slow.internal" });
    await agent.client.start(guest);
    shell = await SerialShell.open(agent, guest.id);
    await waitFor("its lease", () => shell!.log().includes("GUESTHOUSE-DHCP eth0 10.93.0.128/24"), 30_000, 200);
    const rules = ns.run(inside, "nft", "list", "table", "bridge", tableName("slow"));
    assert.match(rules, /limit rate over 125 kbytes\/second burst 64 kbytes .*drop comment "over its bandwidth out"/);
    assert.doesNotMatch(rules, /bandwidth in/, "the way in is shaped, not policed");
    const tap = JSON.parse(fs.readFileSync(path.join(agent.dataDir, "networks", "slow", "ports.json"), "utf8"))[0].tap as string;
    assert.match(ns.run(inside, "tc", "qdisc", "show", "dev", tap), /tbf .*rate 2Mbit/);
  });

  step("what the guest sends is held near 1 Mbit/s: 384 KiB from its web server take at least 1.5 s (2 Mbit/s), and the policer dropped some", async () => {
    await shell!.run("dd if=/dev/zero of=/www/big bs=1k count=384 2>/dev/null; echo MADE");
    const before = dropped("over its bandwidth out");
    const counted = await cardCounters();
    const t = performance.now();
    const body = ns.fetchText(inside, "http://10.93.0.128/big", 60_000);
    const seconds = (performance.now() - t) / 1000;
    assert.equal(body?.length, 384 * KIB);
    // 384 KiB × 8 at twice the limit (2 Mbit/s) take 1.57 s.
    assert.ok(seconds >= 1.5, `took ${seconds.toFixed(2)} s`);
    assert.ok(dropped("over its bandwidth out") > before, "the policer dropped what went over");
    // The metrics see it from the guest's side: it sent the page (its tap's host end received it).
    const now = await cardCounters();
    assert.ok(now.txBytes - counted.txBytes >= 384 * KIB, `the guest sent ${now.txBytes - counted.txBytes} bytes`);
    assert.ok(now.rxBytes - counted.rxBytes < 128 * KIB, `and received little (the request and ACKs): ${now.rxBytes - counted.rxBytes}`);
  });

  step("what reaches the guest is shaped to 2 Mbit/s: 512 KiB from the host take it at least 1.8 s", async () => {
    const payload = Buffer.alloc(512 * KIB, 7);
    const server = ns.start(inside, process.execPath, "-e", `require("node:http").createServer((q, r) => r.end(Buffer.alloc(${payload.length}, 7))).listen(18080, "10.93.0.1")`);
    try {
      await waitFor("the host's server", () => ns.run(inside, "ss", "-H", "-l", "-n", "-t").includes("10.93.0.1:18080"), 5_000);
      const counted = await cardCounters();
      const out = await shell!.run("a=$(cut -d' ' -f1 /proc/uptime); wget -q -O /tmp/in http://10.93.0.1:18080/; b=$(cut -d' ' -f1 /proc/uptime); echo ELAPSED $a $b SIZE $(wc -c < /tmp/in)", 60_000);
      const match = /ELAPSED ([\d.]+) ([\d.]+) SIZE (\d+)/.exec(out);
      assert.ok(match, out);
      assert.equal(Number(match[3]), payload.length);
      const seconds = Number(match[2]) - Number(match[1]);
      // (512 KiB - 32 KiB of burst) × 8 at 2 Mbit/s take 1.97 s.
      assert.ok(seconds >= 1.8, `took ${seconds.toFixed(2)} s`);
      // The metrics, from the guest's side: it received the download, and sent little.
      const now = await cardCounters();
      assert.ok(now.rxBytes - counted.rxBytes >= 512 * KIB, `the guest received ${now.rxBytes - counted.rxBytes} bytes`);
      assert.ok(now.txBytes - counted.txBytes < 128 * KIB, `and sent little (the request and ACKs): ${now.txBytes - counted.txBytes}`);
    } finally {
      server.kill("SIGKILL");
    }
  });

});
