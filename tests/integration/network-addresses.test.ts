/**
 * Guests' addresses on managed networks through the agent's event stream, with no agent in
 * the guest: a real agent inside a network namespace the test makes, a real guest with a
 * card on a NAT network whose firmware asks for an address (SeaBIOS booting from the
 * network: iPXE's DHCP, the guest's own MAC through its tap), and the line
 * `{ addresses: { guest, nics } }` on the agent's event stream within 2 s of the lease
 * appearing in dnsmasq's lease file, and so for a stand-in client that leaves the bridge's
 * neighbour table alone (the lease file's watch by itself). Also: the stream's first lines carry the addresses
 * known (before `{ synced: true }`), the guest's status has them, a restarted agent
 * follows its kept network again, and a stopped guest's line says it has none. The web's
 * state hub, following the same agent, keeps them in the guests' statuses (what the list,
 * the pages and the event streams read) and tells its listeners at once. And through the
 * whole product (a built app): a guest started through the API shows its address on the
 * API's event stream, in its answer, on the list and on its page.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import type { AddressesLine } from "../../server/agent-protocol";
import { bridgeName } from "../../server/agent/networks/nft";
import { createToken } from "../../server/auth/api-tokens";
import { createSession, SESSION_COOKIE, userForSession } from "../../server/auth/sessions";
import { guestDetail } from "../../server/web/api/schemas";
import { firstIpv4 } from "../../server/web/guest-list";
import { StateHub } from "../../server/web/state-hub";
import type { Port } from "../../server/agent/networks/ports";
import type { ManagedNicSpec } from "../../server/domain/types";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { Namespaces } from "../helpers/netns";
import { startTestStack, type TestStack } from "../helpers/web";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const NETWORK = "addr";
const MAC = "52:54:00:93:00:01";
const IDLE_MAC = "52:54:00:93:00:02";
const nic: ManagedNicSpec = { mac: MAC, model: "virtio", mode: "managed", network: NETWORK, isolated: false, forwards: [] };
/** No disk, no CD-ROM: the firmware boots from the card, and iPXE asks for an address with the guest's MAC. */
const guest = testSpec("guestaddr0001", { name: "pxe-1", memoryMiB: 128, cdroms: [], nics: [nic], bootOrder: ["network"] });

/** The agent's event stream, followed for the whole story: each line with when it came (Date.now()). */
interface Followed {
  lines: Array<{ at: number; kind: "status" | "addresses" | "synced"; addresses?: AddressesLine }>;
  close(): void;
}

function follow(agent: TestAgent): Followed {
  const lines: Followed["lines"] = [];
  const stream = agent.client.events(
    () => lines.push({ at: Date.now(), kind: "status" }),
    undefined,
    undefined,
    () => lines.push({ at: Date.now(), kind: "synced" }),
    (addresses) => lines.push({ at: Date.now(), kind: "addresses", addresses }),
  );
  stream.done.catch(() => {});
  return { lines, close: () => stream.close() };
}

story("guests' addresses on the agent's event stream, the agent in a network namespace", (step) => {
  const ns = new Namespaces();
  let inside = "";
  let agent: TestAgent;
  let stream: Followed | null = null;
  let port: Port;
  /** The web's state hub following the agent (its database: just the one host). */
  let hub: StateHub;
  const HOST = "host1";
  const heard: Array<{ at: number; changed: string[] }> = [];
  let unsubscribe = () => {};
  /** When the hub's status of `guest` first had `ip` as its first IPv4 address (as the list row shows it). */
  const hubKnows = (guest: string, mac: string, ip: string) => waitFor(`the hub to know ${ip}`, () => (firstIpv4(hub.statusesOf(HOST)?.get(guest), [mac]) === ip ? Date.now() : null), 2_000, 5);
  const folder = () => path.join(agent.dataDir, "networks", NETWORK);
  const linesOf = (s: Followed) => s.lines.filter((l) => l.kind === "addresses" && l.addresses!.guest === guest.id).map((l) => ({ at: l.at, nics: l.addresses!.nics }));

  before(async () => {
    inside = ns.add("a");
    ns.run(inside, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    agent = await startTestAgent({}, { netns: inside });
    hub = new StateHub({ host: { findMany: async () => [{ id: HOST, endpoint: `unix:${agent.socketPath}` }] } } as never);
    unsubscribe = hub.subscribe((changed) => void heard.push({ at: Date.now(), changed }));
  });
  after(async () => {
    unsubscribe();
    stream?.close();
    await agent?.client.forceOff(guest.id).catch(() => {});
    await agent?.client.removeNetwork(NETWORK).catch(() => {});
    await agent?.cleanup();
    ns.cleanup();
  });

  step("a network is made and a guest starts on it: its card is on the stream, with no address yet", async () => {
    stream = follow(agent);
    await waitFor("the stream's first lines", () => stream!.lines.some((l) => l.kind === "synced"), 10_000);
    await agent.client.applyNetwork(NETWORK, { kind: "nat", subnet: "10.93.0.0/24", dhcp: "auto", domain: "addr.internal" });
    await agent.client.start(guest);
    port = (JSON.parse(fs.readFileSync(path.join(folder(), "ports.json"), "utf8")) as Port[]).find((p) => p.guest === guest.id)!;
    assert.equal(port.ip, "10.93.0.128");
    const first = await waitFor("the guest's card on the stream", () => linesOf(stream!)[0], 5_000, 20);
    assert.deepEqual(first.nics, [{ mac: MAC, network: NETWORK, ipv4: [], ipv6: [] }]);
  });

  step("the guest's firmware asks for an address: the line with it comes within 2 s of the lease in the lease file", { timeout: 120_000 }, async () => {
    // The lease file as dnsmasq writes it, watched from here: when the guest's lease is first in
    // it (the file's own time of change, and when this process saw it).
    const leased = new Promise<{ mtime: number; seen: number }>((resolve) => {
      const look = () => {
        try {
          const file = path.join(folder(), "leases");
          const stat = fs.statSync(file);
          if (fs.readFileSync(file, "utf8").includes(MAC)) {
            watcher.close();
            resolve({ mtime: stat.mtimeMs, seen: Date.now() });
          }
        } catch {
          // not written yet
        }
      };
      const watcher = fs.watch(folder(), (_e, name) => name === "leases" && look());
      look();
    });
    const lease = await Promise.race([leased, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no lease for ${MAC} within 90 s:\n${agent.output().slice(-2000)}`)), 90_000))]);
    const line = await waitFor("the line with the guest's address", () => linesOf(stream!).find((l) => l.nics[0]?.ipv4.includes(port.ip!)), 2_000, 10).catch((err: Error) => {
      throw new Error(`${err.message}; lines: ${JSON.stringify(linesOf(stream!))}; leases: ${fs.readFileSync(path.join(folder(), "leases"), "utf8")}`);
    });
    await hubKnows(guest.id, MAC, port.ip!);
    // Usually before the acknowledgement: dnsmasq puts the address it offers in the bridge's
    // neighbour table (to send the offer to it), and iPXE waits a few seconds for other
    // offers before it asks for that one. The next step shows the lease file alone.
    const late = line.at - lease.mtime;
    console.log(`# the address came ${late.toFixed(0)} ms after the lease file was written`);
    assert.ok(late <= 2_000, `the address came ${late} ms after the lease`);
    assert.deepEqual(line.nics, [{ mac: MAC, network: NETWORK, ipv4: [port.ip], ipv6: [] }]);
  });

  step("a client that leaves no neighbour entry (broadcast replies, no address set): the lease file alone brings its address within 2 s", async () => {
    // A second guest whose firmware boots nothing (no boot device) has a port on the network;
    // a stand-in on the bridge with that port's MAC asks for its address.
    const idle = testSpec("guestaddr0002", { name: "idle-2", memoryMiB: 128, cdroms: [], nics: [{ ...nic, mac: IDLE_MAC }], bootOrder: [] });
    await agent.client.start(idle);
    const idlePort = (JSON.parse(fs.readFileSync(path.join(folder(), "ports.json"), "utf8")) as Port[]).find((p) => p.guest === idle.id)!;
    const client = ns.add("c");
    ns.link(inside, "vc", client, "eth0");
    ns.run(client, "ip", "link", "set", "eth0", "address", IDLE_MAC);
    ns.run(inside, "ip", "link", "set", "vc", "master", bridgeName(NETWORK));
    ns.run(client, "busybox", "udhcpc", "-B", "-i", "eth0", "-q", "-n", "-t", "10", "-T", "1", "-s", "/bin/true");
    const written = await waitFor("the stand-in's lease", () => {
      const file = path.join(folder(), "leases");
      return fs.readFileSync(file, "utf8").includes(IDLE_MAC) ? fs.statSync(file).mtimeMs : null;
    }, 5_000, 5);
    const line = await waitFor("the line with its address", () => stream!.lines.find((l) => l.addresses?.guest === idle.id && l.addresses.nics[0]?.ipv4.includes(idlePort.ip!)), 2_000, 10);
    const late = line.at - written;
    const hubAt = await hubKnows(idle.id, IDLE_MAC, idlePort.ip!);
    console.log(`# the address came ${late.toFixed(0)} ms after the lease file was written (the web's state hub had it after ${(hubAt - written).toFixed(0)} ms)`);
    assert.ok(late >= 0 && late <= 2_000, `the address came ${late} ms after the lease`);
    assert.ok(hubAt - written <= 2_000, `the hub had it ${hubAt - written} ms after the lease`);
    assert.ok(heard.some((h) => h.changed.includes(idle.id) && h.at >= written), "the hub told its listeners (the pages' and the API's event streams) of the guest");
    await agent.client.forceOff(idle.id);
  });

  step("the guest's status carries its addresses; a new stream's first lines have them before { synced: true }", async () => {
    const status = await agent.client.guest(guest.id);
    assert.deepEqual(status.addresses, [{ mac: MAC, network: NETWORK, ipv4: [port.ip], ipv6: [] }]);
    assert.deepEqual((await agent.client.guests()).find((g) => g.id === guest.id)?.addresses, status.addresses);
    const fresh = follow(agent);
    try {
      await waitFor("the new stream's first lines", () => fresh.lines.some((l) => l.kind === "synced"), 5_000, 20);
      const synced = fresh.lines.findIndex((l) => l.kind === "synced");
      const mine = fresh.lines.findIndex((l) => l.kind === "addresses" && l.addresses!.guest === guest.id);
      assert.ok(mine >= 0 && mine < synced, "the guest's addresses come before { synced: true }");
      assert.deepEqual(fresh.lines[mine]!.addresses!.nics[0]!.ipv4, [port.ip]);
    } finally {
      fresh.close();
    }
  });

  step("the agent killed and started again: it follows its kept network, and its first lines have the address", async () => {
    stream!.close();
    await agent.kill();
    await agent.restart();
    stream = follow(agent);
    await waitFor("the address after the restart", () => linesOf(stream!).find((l) => l.nics[0]?.ipv4.includes(port.ip!)), 5_000, 20);
    assert.deepEqual((await agent.client.guest(guest.id)).addresses?.[0]?.ipv4, [port.ip]);
  });

  step("the guest stopped: its line says it has no card on any network any more", async () => {
    await agent.client.forceOff(guest.id);
    const gone = await waitFor("the guest's empty line", () => linesOf(stream!).find((l) => l.nics.length === 0), 5_000, 20);
    assert.deepEqual(gone.nics, []);
    await waitFor("the hub to drop the guest's addresses", () => (hub.statusesOf(HOST)?.get(guest.id)?.addresses ?? []).length === 0, 5_000, 20);
    assert.deepEqual((await agent.client.guest(guest.id)).addresses, []);
    await agent.client.removeNetwork(NETWORK);
  });
});

/** A text/event-stream response, read as it comes: the text so far, and each event's time. */
async function listen(url: string, headers: Record<string, string>): Promise<{ text(): string; events: Array<{ at: number; text: string }>; close(): void }> {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  let text = "";
  /** What came of an event not yet ended (an event ends with an empty line). */
  let pending = "";
  const events: Array<{ at: number; text: string }> = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += value;
        pending += value;
        for (let end = pending.indexOf("\n\n"); end >= 0; end = pending.indexOf("\n\n")) {
          events.push({ at: Date.now(), text: pending.slice(0, end) });
          pending = pending.slice(end + 2);
        }
      }
    } catch {
      // aborted
    }
  })();
  return { text: () => text, events, close: () => controller.abort() };
}

story("guests' addresses in the web: the API's event stream and answer, the list row and the guest's page", (step) => {
  const ns = new Namespaces();
  let agent: TestAgent;
  let stack: TestStack;
  let guestId = "";
  let token = "";
  let cookie = "";
  let api: Awaited<ReturnType<typeof listen>> | null = null;
  let pages: Awaited<ReturnType<typeof listen>> | null = null;
  const WEB_MAC = "52:54:00:94:00:01";
  const IP = "10.94.0.128";
  const auth = () => ({ authorization: `Bearer ${token}` });

  before(async () => {
    const inside = ns.add("w");
    ns.run(inside, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    stack = await startTestStack({ agentNetns: inside });
    agent = stack.agent;
    const db = stack.database.db;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const host = await db.host.findUniqueOrThrow({ where: { name: "local" } });
    const network = await db.network.create({
      data: { name: "lab", mode: "nat", subnet: "10.94.0.0/24", dhcpStart: "10.94.0.128", dhcpEnd: "10.94.0.254", domain: "lab.internal", ownerId: admin.id, teamId: admin.teamId, hostId: host.id },
    });
    await agent.client.applyNetwork(network.id, { kind: "nat", subnet: "10.94.0.0/24", dhcp: { start: "10.94.0.128", end: "10.94.0.254" }, domain: "lab.internal" });
    // No disk, no CD-ROM: the firmware boots from the card (iPXE asks for an address).
    const guest = await db.guest.create({
      data: { name: "pxe-web", vcpus: 1, memoryMiB: 128, bootOrder: "network", ownerId: admin.id, teamId: admin.teamId, hostId: host.id, nics: { create: { mac: WEB_MAC, model: "virtio", position: 0, networkId: network.id } } },
    });
    guestId = guest.id;
    const session = await createSession(db, admin.id);
    cookie = `${SESSION_COOKIE}=${session.secret}`;
    token = (await createToken(db, (await userForSession(db, session.secret))!, { name: "addresses", scope: "operate", days: 1 })).token;
  });
  after(async () => {
    api?.close();
    pages?.close();
    await agent?.client.forceOff(guestId).catch(() => {});
    await stack?.cleanup();
    ns.cleanup();
  });

  step("started through the API, the guest's address comes on the API's event stream, and the pages' stream names the guest", { timeout: 120_000 }, async () => {
    api = await listen(`${stack.baseUrl}/api/v1/events`, auth());
    pages = await listen(`${stack.baseUrl}/api/events`, { cookie });
    await waitFor("both streams to open", () => api!.text().includes("retry:") && pages!.text().includes("retry:"), 10_000);
    const started = await fetch(`${stack.baseUrl}/api/v1/guests/${guestId}/power`, { method: "POST", headers: { ...auth(), "content-type": "application/json" }, body: JSON.stringify({ action: "start" }) });
    assert.equal(started.status, 200, await started.text());
    const card = `event: addresses\ndata: ${JSON.stringify({ id: guestId, nics: [{ mac: WEB_MAC, network: (await stack.database.db.nic.findFirstOrThrow({ where: { guestId } })).networkId, ipv4: [IP], ipv6: [] }] })}`;
    const event = await waitFor("the address on the API's stream", () => api!.events.find((e) => e.text === card), 90_000, 50);
    const named = await waitFor("the pages' stream to name the guest after it", () => pages!.events.find((e) => e.text.startsWith("data: ") && e.text.includes(guestId) && e.at >= event.at - 1_000), 2_000, 20);
    assert.ok(named);
    // The card came first with no address (the guest started), then with it; nothing more while it stays so.
    await new Promise((r) => setTimeout(r, 1_500));
    const cards = api!.events.filter((e) => e.text.startsWith("event: addresses"));
    assert.deepEqual(cards.map((e) => e.text.includes(IP)), [false, true], api!.text());
  });

  step("the API's answer has the card's addresses (its schema's shape)", async () => {
    const res = await fetch(`${stack.baseUrl}/api/v1/guests/${guestId}`, { headers: auth() });
    assert.equal(res.status, 200);
    const body = guestDetail.parse(await res.json());
    assert.deepEqual(body.nics, [{ mac: WEB_MAC, model: "virtio", addresses: { ipv4: [IP], ipv6: [] } }]);
  });

  step("the list row shows the first IPv4; the guest's page shows the card's addresses", async () => {
    const list = await (await fetch(`${stack.baseUrl}/`, { headers: { cookie } })).text();
    assert.match(list, new RegExp(`data-testid="guest-ip"[^>]*>${IP.replaceAll(".", "\\.")}<`));
    const page = await (await fetch(`${stack.baseUrl}/guests/${guestId}`, { headers: { cookie } })).text();
    assert.match(page, new RegExp(`data-testid="nic-ipv4"[^>]*>${IP.replaceAll(".", "\\.")}<`));
    assert.match(page, />lab</, "the card names its network");
  });

  step("stopped: the API's stream says the guest has no card any more, and its answer's lists are empty", async () => {
    const stopped = await fetch(`${stack.baseUrl}/api/v1/guests/${guestId}/power`, { method: "POST", headers: { ...auth(), "content-type": "application/json" }, body: JSON.stringify({ action: "force-off" }) });
    assert.equal(stopped.status, 200, await stopped.text());
    await waitFor("the empty line on the API's stream", () => api!.text().includes(`event: addresses\ndata: ${JSON.stringify({ id: guestId, nics: [] })}`), 10_000, 50);
    const body = guestDetail.parse(await (await fetch(`${stack.baseUrl}/api/v1/guests/${guestId}`, { headers: auth() })).json());
    assert.deepEqual(body.nics[0]!.addresses, { ipv4: [], ipv6: [] });
    const list = await (await fetch(`${stack.baseUrl}/`, { headers: { cookie } })).text();
    assert.doesNotMatch(list, /data-testid="guest-ip"/);
  });
});
