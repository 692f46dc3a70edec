/**
 * Managed networks through the agent's API (server/agent-protocol.ts: networks, applyNetwork,
 * removeNetwork, networkLeases, networkDoctor), with a real agent run inside a network
 * namespace the test makes, so its bridges, rules and dnsmasq never touch the host's own
 * network: made, a guest's lease listed, refusals, the doctor, kept across the agent's
 * SIGKILL and restart, and removed leaving nothing.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { bridgeName, tableName } from "../../server/agent/networks/nft";
import { processAlive } from "../../server/agent/networks/manager";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { Namespaces, namespacesNamed } from "../helpers/netns";

const isCode = (code: string) => (err: Error & { code?: string }) => err.code === code;

describe("managed networks through the agent's API, the agent in a network namespace", () => {
  const ns = new Namespaces();
  let inside = "";
  let agent: TestAgent;

  before(async () => {
    inside = ns.add("a");
    agent = await startTestAgent({}, { netns: inside });
  });
  after(async () => {
    await agent?.cleanup();
    ns.cleanup();
  });

  test("the doctor of a fresh namespace names forwarding as off, with its fix; once on, nothing", async () => {
    const findings = await agent.client.networkDoctor();
    assert.deepEqual(findings.map((f) => f.id), ["ip-forward"]);
    assert.match(findings[0]!.fix, /sysctl -w net\.ipv4\.ip_forward=1/);
    ns.run(inside, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    assert.deepEqual(await agent.client.networkDoctor(), []);
  });

  test("a NAT network is made and listed; a guest on its bridge gets a lease the API lists", async () => {
    const state = await agent.client.applyNetwork("lab", { kind: "nat", subnet: "10.81.0.0/24", dhcp: "auto", domain: "lab.internal" });
    assert.deepEqual(state, { id: "lab", kind: "nat", subnet: "10.81.0.0/24", bridge: bridgeName("lab"), gateway: "10.81.0.1", dhcp: { start: "10.81.0.128", end: "10.81.0.254" }, domain: "lab.internal", ipv6: null, dnsmasq: true });
    assert.deepEqual(await agent.client.networks(), [state]);
    const guest = ns.add("g");
    ns.link(inside, "vg", guest, "eth0");
    ns.run(inside, "ip", "link", "set", "vg", "master", state.bridge);
    execFileSync("ip", ["netns", "exec", guest, "busybox", "udhcpc", "-i", "eth0", "-q", "-n", "-t", "10", "-T", "1", "-x", "hostname:db1", "-s", "/bin/true"], { stdio: "ignore", timeout: 30_000 });
    const leases = await waitFor("the lease through the API", async () => ((await agent.client.networkLeases("lab")).length ? agent.client.networkLeases("lab") : null), 5_000);
    assert.equal(leases[0]!.hostname, "db1");
    assert.equal(leases[0]!.mac, ns.run(guest, "cat", "/sys/class/net/eth0/address").trim());
  });

  test("bad requests are refused, naming what is wrong, and change nothing", async () => {
    await assert.rejects(agent.client.applyNetwork("lab2", { kind: "nat", subnet: "10.81.0.128/25", dhcp: "auto", domain: "two.internal" }), (err: Error & { code?: string }) => err.code === "conflict" && /overlaps the network lab/.test(err.message));
    await assert.rejects(agent.client.applyNetwork("lab2", { kind: "nat", subnet: "8.8.8.0/24", dhcp: "auto", domain: "two.internal" }), isCode("invalid-input"));
    await assert.rejects(agent.client.applyNetwork("lab2", { kind: "nat", subnet: "10.82.0.0/24", dhcp: "auto", domain: "Not A Domain" }), isCode("invalid-input"));
    await assert.rejects(agent.client.applyNetwork("LAB 2", { kind: "nat", subnet: "10.82.0.0/24", dhcp: "auto", domain: "two.internal" }), isCode("invalid-input"));
    await assert.rejects(agent.client.networkLeases("nothing"), isCode("not-found"));
    assert.equal((await agent.client.networks()).length, 1);
  });

  test("the agent killed and started again: the network is still there, its dnsmasq the same process", async () => {
    const pid = Number(ns.run(inside, "cat", `${agent.dataDir}/networks/lab/dnsmasq.pid`).trim());
    await agent.kill();
    await agent.restart();
    assert.match(agent.output(), /1 managed network\(s\) set up again: lab/);
    assert.equal((await agent.client.networks())[0]?.dnsmasq, true);
    assert.equal(Number(ns.run(inside, "cat", `${agent.dataDir}/networks/lab/dnsmasq.pid`).trim()), pid);
    assert.ok(processAlive(pid));
  });

  test("removed through the API: no bridge, table or dnsmasq; removing it again is not-found; no namespace at the end", async () => {
    const pid = Number(ns.run(inside, "cat", `${agent.dataDir}/networks/lab/dnsmasq.pid`).trim());
    await agent.client.removeNetwork("lab");
    assert.deepEqual(await agent.client.networks(), []);
    assert.equal(ns.ok(inside, "ip", "link", "show", bridgeName("lab")), false);
    assert.doesNotMatch(ns.run(inside, "nft", "list", "tables"), new RegExp(tableName("lab")));
    assert.equal(processAlive(pid), false);
    await assert.rejects(agent.client.removeNetwork("lab"), isCode("not-found"));
    await agent.cleanup();
    ns.cleanup();
    assert.deepEqual(namespacesNamed(ns.prefix), []);
  });
});
