/**
 * Demo guests on managed networks, with a real agent inside a network namespace the test
 * makes (so its bridges, taps, rules and dnsmasq never touch the host's own network):
 * each NIC a tap on its network's bridge, handed to QEMU as a descriptor; the guests get
 * the leases the agent chose, reach and name each other, cannot reach another network's
 * guests or send as anyone else; a MAC in use is refused; the agent's restart keeps it
 * all; stopped guests leave no tap, and a removed network leaves nothing.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import { bridgeName, tableName } from "../../server/agent/networks/nft";
import { processAlive } from "../../server/agent/networks/manager";
import { TAP_PREFIX, type Port } from "../../server/agent/networks/ports";
import type { GuestSpec, ManagedNicSpec } from "../../server/domain/types";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { Namespaces } from "../helpers/netns";
import { BOOT_TIMEOUT_MS, SerialShell } from "../helpers/serial-shell";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const isCode = (code: string, text?: RegExp) => (err: Error & { code?: string }) => err.code === code && (!text || text.test(err.message));
const nic = (network: string, mac: string): ManagedNicSpec => ({ mac, model: "virtio", mode: "managed", network, isolated: false, forwards: [] });

story("demo guests on managed networks, the agent in a network namespace", (step) => {
  const ns = new Namespaces();
  let inside = "";
  let world = "";
  let agent: TestAgent;
  const shells = new Map<string, SerialShell>();
  const web = testSpec("guestnet00001", { name: "web-1", memoryMiB: 160, nics: [nic("lab", "52:54:00:91:00:01")] });
  const db = testSpec("guestnet00002", { name: "db", memoryMiB: 160, nics: [nic("lab", "52:54:00:91:00:02")] });
  const stranger = testSpec("guestnet00003", { name: "stranger", memoryMiB: 160, nics: [nic("other", "52:54:00:92:00:03")] });
  const guests = [web, db, stranger];

  const ports = (network: string): Port[] => {
    const file = path.join(agent.dataDir, "networks", network, "ports.json");
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Port[]) : [];
  };
  const portOf = (spec: GuestSpec) => ports((spec.nics[0] as ManagedNicSpec).network).find((p) => p.guest === spec.id)!;
  const shell = (spec: GuestSpec) => shells.get(spec.id)!;
  /** The packets a rule of the network's bridge table counted, by its comment. */
  const counted = (network: string, comment: string) =>
    [...ns.run(inside, "nft", "list", "table", "bridge", tableName(network)).matchAll(new RegExp(`packets (\\d+) bytes \\d+ drop comment "${comment}"`, "g"))].reduce((n, m) => n + Number(m[1]), 0);
  const taps = () => ns.run(inside, "ip", "-o", "link", "show").split("\n").filter((l) => l.includes(TAP_PREFIX));

  before(async () => {
    inside = ns.add("a");
    ns.run(inside, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    // Forwards listen on every address of the host (the namespace), as an admin may choose.
    agent = await startTestAgent({ GUESTHOUSE_FORWARD_ADDRESS: "0.0.0.0", GUESTHOUSE_FORWARD_PORTS: "20000-20999" }, { netns: inside });
  });
  after(async () => {
    for (const s of shells.values()) s.close();
    for (const g of guests) await agent?.client.forceOff(g.id).catch(() => {});
    await agent?.cleanup();
    ns.cleanup();
  });

  step("two networks are made; three guests start with a card each, its tap on the network's bridge", async () => {
    await agent.client.applyNetwork("lab", { kind: "nat", subnet: "10.91.0.0/24", dhcp: "auto", domain: "lab.internal" });
    await agent.client.applyNetwork("other", { kind: "nat", subnet: "10.92.0.0/24", dhcp: "auto", domain: "other.internal" });
    for (const g of guests) await agent.client.start(g);
    assert.deepEqual(ports("lab").map((p) => [p.name, p.ip]), [["web-1", "10.91.0.128"], ["db", "10.91.0.129"]]);
    assert.deepEqual(ports("other").map((p) => [p.name, p.ip]), [["stranger", "10.92.0.128"]]);
    for (const g of guests) {
      const port = portOf(g);
      const link = ns.run(inside, "ip", "-o", "link", "show", "dev", port.tap);
      assert.match(link, new RegExp(`master ${bridgeName((g.nics[0] as ManagedNicSpec).network)}`), `${g.name}'s tap is on its bridge`);
      assert.match(link, /state UP|LOWER_UP/);
    }
    // QEMU holds the tap: the descriptor, never a device name it could open itself.
    const argv = (await agent.client.guest(web.id)).argv!;
    assert.ok(argv.some((a) => /^tap,id=net0,fd=\d+$/.test(a)), argv.join(" "));
  });

  step("each guest gets the lease the agent chose for its MAC", { timeout: BOOT_TIMEOUT_MS * 2 }, async () => {
    for (const g of guests) shells.set(g.id, await SerialShell.open(agent, g.id));
    for (const g of guests) {
      const port = portOf(g);
      await waitFor(`${g.name}'s DHCP lease`, () => shell(g).log().includes(`GUESTHOUSE-DHCP eth0 ${port.ip}/24`), 30_000, 200);
      const lease = await waitFor(`${g.name}'s lease in the agent`, async () => (await agent.client.networkLeases((g.nics[0] as ManagedNicSpec).network)).find((l) => l.mac === port.mac), 5_000);
      assert.equal(lease.ip, port.ip);
    }
  });

  step("guests of one network reach each other by name in its domain", async () => {
    const out = await shell(web).run("ping -c 2 -W 3 db.lab.internal && echo PING-DB-OK");
    assert.match(out, /PING-DB-OK/, out);
    assert.match(out, /10\.91\.0\.129/, "the name is db's address");
    const back = await shell(db).run("ping -c 2 -W 3 web-1.lab.internal && echo PING-WEB-OK");
    assert.match(back, /PING-WEB-OK/, back);
  });

  step("a guest of another network cannot reach them", async () => {
    const out = await shell(stranger).run("ping -c 2 -W 2 10.91.0.129 || echo PING-REFUSED");
    assert.match(out, /PING-REFUSED/, out);
    // It reaches its own gateway: the refusal is the rules', not a dead card.
    assert.match(await shell(stranger).run("ping -c 1 -W 3 10.92.0.1 && echo GW-OK"), /GW-OK/);
  });

  step("a guest sending from another address or with another MAC is dropped and counted", async () => {
    const before = counted("lab", "spoofed address");
    const out = await shell(web).run("ip addr add 10.91.0.200/24 dev eth0; ping -c 2 -W 2 -I 10.91.0.200 10.91.0.129 || echo SPOOF-DROPPED; ip addr del 10.91.0.200/24 dev eth0");
    assert.match(out, /SPOOF-DROPPED/, out);
    assert.ok(counted("lab", "spoofed address") > before, "the spoofed address rule counted them");

    const macBefore = counted("lab", "spoofed MAC");
    const other = await shell(web).run("ip link set eth0 address 52:54:00:91:00:99; ping -c 2 -W 2 10.91.0.129 || echo MAC-DROPPED; ip link set eth0 address 52:54:00:91:00:01");
    assert.match(other, /MAC-DROPPED/, other);
    assert.ok(counted("lab", "spoofed MAC") > macBefore, "the spoofed MAC rule counted them");
    assert.match(await shell(web).run("ping -c 1 -W 3 10.91.0.129 && echo BACK-OK"), /BACK-OK/, "its own MAC and address pass again");
  });

  const LAB = { kind: "nat" as const, subnet: "10.91.0.0/24", dhcp: "auto" as const, domain: "lab.internal" };
  const webForward = { protocol: "tcp" as const, hostPort: 20080, mac: "52:54:00:91:00:01", guestPort: 80 };

  step("a port forward reaches web-1's web server from outside, from the host and from db (hairpin); the test button says so", async () => {
    // "Outside": another namespace on the host's uplink, as a LAN would be.
    world = ns.add("o");
    ns.link(inside, "up0", world, "eth0");
    ns.run(inside, "ip", "addr", "add", "172.31.0.1/24", "dev", "up0");
    ns.run(world, "ip", "addr", "add", "172.31.0.2/24", "dev", "eth0");
    await agent.client.applyNetwork("lab", { ...LAB, forwards: [webForward, { protocol: "tcp", hostPort: 20081, mac: "52:54:00:91:00:01", guestPort: 81 }] });
    assert.match(ns.fetchText(world, "http://172.31.0.1:20080/") ?? "no answer", /GUESTHOUSE-HTTP/);
    assert.match(await shell(db).run("timeout 5 wget -q -O - http://10.91.0.1:20080/ && echo HAIRPIN-OK"), /GUESTHOUSE-HTTP[\s\S]*HAIRPIN-OK/);
    const answered = await agent.client.testForward("lab", "tcp", 20080);
    assert.equal(answered.answered, true);
    assert.match(answered.message, /The guest answered on tcp port 20080/);
    const refusedTest = await agent.client.testForward("lab", "tcp", 20081);
    assert.equal(refusedTest.answered, false);
    assert.match(refusedTest.message, /refused the connection on port 81: nothing listens/);
  });

  step("forwards outside the host's range, on a port the host listens on, twice, or to an isolated network are refused, and nothing changes", async () => {
    // The rules without their counters (nft -s): a guest's packet meanwhile moves a counter, not a rule.
    const rules = () => ns.run(inside, "nft", "-s", "list", "table", "inet", tableName("lab"));
    const before = rules();
    const listener = ns.listen(inside, 20090);
    await waitFor("a listener on 20090", () => ns.run(inside, "ss", "-H", "-l", "-n", "-t").includes(":20090"), 5_000);
    const cases: Array<[object, string, RegExp]> = [
      [{ ...webForward, hostPort: 30080 }, "invalid-input", /outside the ports this host forwards to guests \(20000–20999\)/],
      [{ ...webForward, hostPort: 20090 }, "conflict", /already listens on tcp port 20090/],
      [{ ...webForward, hostPort: 1000, hostPortEnd: 1001, guestPort: 1000 }, "invalid-input", /outside the ports/],
    ];
    for (const [forward, code, message] of cases) await assert.rejects(agent.client.applyNetwork("lab", { ...LAB, forwards: [forward as typeof webForward] }), isCode(code, message));
    await assert.rejects(agent.client.applyNetwork("lab", { ...LAB, forwards: [webForward, { ...webForward, guestPort: 22 }] }), isCode("invalid-input", /forwarded twice/));
    await assert.rejects(agent.client.applyNetwork("other", { kind: "isolated", subnet: "10.92.0.0/24", dhcp: "auto", domain: "other.internal", forwards: [{ ...webForward, hostPort: 20500 }] }), isCode("invalid-input", /NAT networks only/));
    listener.kill("SIGKILL");
    assert.equal(rules(), before, "the rules are as they were");
  });

  step("a deny rule on web-1's card blocks the web server from outside and from db, and its counter moves; removed, it passes again", async () => {
    const deny = { id: "noweb", action: "deny" as const, direction: "in" as const, protocol: "tcp" as const, ports: { from: 80, to: 80 }, cidr: null, mac: "52:54:00:91:00:01", comment: "" };
    await agent.client.applyNetwork("lab", { ...LAB, forwards: [webForward], firewall: { defaultIn: "deny", defaultOut: "allow", rules: [deny] } });
    assert.equal(ns.fetchText(world, "http://172.31.0.1:20080/", 3_000), null, "blocked from outside");
    assert.equal(ns.fetchText(inside, "http://10.91.0.1:20080/", 3_000), null, "blocked from the host itself");
    assert.match(await shell(db).run("timeout 3 wget -q -O - http://web-1.lab.internal/ || echo BLOCKED-INSIDE"), /BLOCKED-INSIDE/, "blocked between guests of the network");
    const counters = await agent.client.networkCounters("lab");
    assert.ok((counters.rules.noweb?.packets ?? 0) > 0, JSON.stringify(counters));
    assert.match(await shell(db).run("ping -c 1 -W 3 web-1.lab.internal && echo PING-STILL-OK"), /PING-STILL-OK/, "only what the rule names is blocked");
    await agent.client.applyNetwork("lab", { ...LAB, forwards: [webForward] });
    assert.match(ns.fetchText(world, "http://172.31.0.1:20080/") ?? "no answer", /GUESTHOUSE-HTTP/);
  });

  step("web-1's link set down cuts it off (its guest sees no carrier); set up, it answers again", async () => {
    await agent.client.setLink(web.id, 0, false);
    assert.match(await shell(db).run("ping -c 2 -W 2 10.91.0.128 || echo LINK-CUT"), /LINK-CUT/);
    assert.match(await shell(web).run("cat /sys/class/net/eth0/carrier"), /^0/m);
    await agent.client.setLink(web.id, 0, true);
    await waitFor("web-1 to answer again", async () => /LINK-BACK/.test(await shell(db).run("ping -c 1 -W 2 10.91.0.128 && echo LINK-BACK")), 20_000, 500);
    await assert.rejects(agent.client.setLink(web.id, 3, false), isCode("not-found", /no network card 4/));
  });

  step("a MAC another guest's card has on this host is refused, and nothing changes", async () => {
    const copy = testSpec("guestnet00004", { name: "copycat", nics: [nic("other", "52:54:00:91:00:01")] });
    const before = { lab: ports("lab"), other: ports("other"), taps: taps().length };
    await assert.rejects(agent.client.start(copy), isCode("conflict", /52:54:00:91:00:01 is already used by a card of web-1/));
    assert.deepEqual({ lab: ports("lab"), other: ports("other"), taps: taps().length }, before);
    await assert.rejects(agent.client.start(testSpec("guestnet00005", { nics: [nic("nowhere", "52:54:00:91:00:05")] })), isCode("not-found", /not set up on this host/));
  });

  step("a network with guests on it is not removed", async () => {
    await assert.rejects(agent.client.removeNetwork("lab"), isCode("conflict", /web-1, db/));
    assert.equal(ns.ok(inside, "ip", "link", "show", bridgeName("lab")), true);
  });

  step("the agent killed and started again: the guests still reach each other, their ports kept", async () => {
    const before = ports("lab");
    await agent.kill();
    await agent.restart();
    assert.deepEqual(ports("lab"), before);
    assert.match(await shell(web).run("ping -c 1 -W 3 db.lab.internal && echo AFTER-RESTART-OK"), /AFTER-RESTART-OK/);
  });

  step("stopped guests leave no tap and no port; then the networks go, leaving nothing", async () => {
    for (const s of shells.values()) s.close();
    shells.clear();
    for (const g of guests) await agent.client.forceOff(g.id);
    await waitFor("every tap to go", () => taps().length === 0, 10_000);
    assert.deepEqual([...ports("lab"), ...ports("other")], []);
    const pids = ["lab", "other"].map((n) => Number(fs.readFileSync(path.join(agent.dataDir, "networks", n, "dnsmasq.pid"), "utf8")));
    await agent.client.removeNetwork("lab");
    await agent.client.removeNetwork("other");
    assert.equal(ns.ok(inside, "ip", "link", "show", bridgeName("lab")), false);
    assert.equal(ns.run(inside, "nft", "list", "tables").trim(), "");
    assert.ok(pids.every((pid) => !processAlive(pid)), "no dnsmasq is left");
    assert.deepEqual(fs.readdirSync(path.join(agent.dataDir, "networks")), []);
  });
});
