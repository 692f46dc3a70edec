/**
 * Demo guests (QEMU, TCG) on a bridged network and on an IPv6 NAT network, with a real agent
 * inside a network namespace the test makes:
 *   - bridged: the namespace's own bridge br0 is "the host's LAN" (an address and a DHCP
 *     server the test runs on it); a guest's tap joins br0, the guest takes the LAN's lease
 *     and reaches the LAN; stopped, its tap goes; the network removed, br0 stays.
 *   - IPv6: a guest on a NAT network with IPv6 takes a SLAAC address in the network's /64
 *     (its own `ip -6 addr`), reaches the gateway with ping -6, and the agent's status of the
 *     guest lists the address (the bridge's neighbour table, with no agent in the guest).
 *   - refused before QEMU runs, nothing changed: a VLAN on a bridge that filters none, a VLAN
 *     on a NAT network, a VLAN of 0 or 4095, a bridge the host lacks.
 *   - VLANs on a VLAN-filtering bridge: two guests on VLAN 10 reach each other, a third on
 *     VLAN 20 reaches neither. Skipped, saying so, on a kernel whose bridges filter no VLANs
 *     (CONFIG_BRIDGE_VLAN_FILTERING off: this machine's).
 * Three guests at most run at once (the machine has 2 cores), each with 160 MiB.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { tableName } from "../../server/agent/networks/nft";
import { TAP_PREFIX, tapName } from "../../server/agent/networks/ports";
import { planIpv6 } from "../../server/domain/network-plan";
import type { GuestSpec, ManagedNicSpec } from "../../server/domain/types";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { Namespaces } from "../helpers/netns";
import { BOOT_TIMEOUT_MS, SerialShell } from "../helpers/serial-shell";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const isCode = (code: string, text: RegExp) => (err: Error & { code?: string }) => err.code === code && text.test(err.message);
const nic = (network: string, mac: string, vlan?: number): ManagedNicSpec => ({ mac, model: "virtio", mode: "managed", network, ...(vlan !== undefined ? { vlan } : {}), isolated: false, forwards: [] });
const SIX = planIpv6("six");
const BASE = SIX.prefix.replace(/::\/64$/, "");

/** Whether this kernel's bridges filter VLANs (a bridge made with vlan_filtering 1 in a scratch namespace). */
function bridgesFilterVlans(): boolean {
  const scratch = `ghvlanprobe${process.pid}`;
  try {
    execFileSync("ip", ["netns", "add", scratch]);
    execFileSync("ip", ["netns", "exec", scratch, "ip", "link", "add", "b0", "type", "bridge", "vlan_filtering", "1"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    execFileSync("ip", ["netns", "del", scratch], { stdio: "ignore" });
  }
}

story("demo guests on a bridged network and an IPv6 NAT network, the agent in a network namespace", (step) => {
  const ns = new Namespaces();
  let inside = "";
  let agent: TestAgent;
  let lanLeases = "";
  const shells = new Map<string, SerialShell>();
  const lan = testSpec("kindguest001", { name: "on-lan", memoryMiB: 160, nics: [nic("lan", "52:54:00:93:00:01")] });
  const six = testSpec("kindguest002", { name: "six", memoryMiB: 160, nics: [nic("six", "52:54:00:93:00:02")] });
  const started: GuestSpec[] = [];
  const shell = (spec: GuestSpec) => shells.get(spec.id)!;
  const taps = () => ns.run(inside, "ip", "-o", "link", "show").split("\n").filter((l) => l.includes(TAP_PREFIX));
  const start = async (spec: GuestSpec) => {
    await agent.client.start(spec);
    started.push(spec);
  };

  before(async () => {
    inside = ns.add("q");
    ns.run(inside, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    ns.run(inside, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1");
    // The host's LAN: br0 with the LAN router's address and the LAN's DHCP server (the test's own dnsmasq).
    ns.run(inside, "ip", "link", "add", "br0", "type", "bridge");
    ns.run(inside, "ip", "addr", "add", "192.168.78.1/24", "dev", "br0");
    ns.run(inside, "ip", "link", "set", "br0", "up");
    lanLeases = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "gh-lan-")), "leases");
    ns.start(inside, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br0", "--bind-interfaces", "--except-interface=lo", `--dhcp-leasefile=${lanLeases}`, "--dhcp-range=192.168.78.100,192.168.78.150,1h", "--dhcp-option=option:router,192.168.78.1");
    agent = await startTestAgent({}, { netns: inside });
  });
  after(async () => {
    for (const s of shells.values()) s.close();
    for (const g of started) await agent?.client.forceOff(g.id).catch(() => {});
    await agent?.cleanup();
    ns.cleanup();
    if (lanLeases) fs.rmSync(path.dirname(lanLeases), { recursive: true, force: true });
  });

  step("a bridged network on br0 and an IPv6 NAT network are made; a network on a bridge the host lacks is refused", async () => {
    await assert.rejects(agent.client.applyNetwork("nolan", { kind: "bridged", bridge: "br9" }), isCode("invalid-input", /This host has no interface br9/));
    const made = await agent.client.applyNetwork("lan", { kind: "bridged", bridge: "br0" });
    assert.deepEqual([made.kind, made.bridge, made.subnet, made.dnsmasq], ["bridged", "br0", null, false]);
    const sixMade = await agent.client.applyNetwork("six", { kind: "nat", subnet: "10.94.0.0/24", dhcp: "auto", domain: "six.internal", ipv6: true });
    assert.equal(sixMade.ipv6, SIX.prefix);
    assert.deepEqual((await agent.client.networks()).map((n) => n.id).sort(), ["lan", "six"]);
  });

  step("refused before QEMU runs, with no port or tap left: a VLAN on a bridge that filters none, on a NAT network, out of 1-4094", async () => {
    const cases: Array<[GuestSpec, string, RegExp]> = [
      [testSpec("kindguest009", { nics: [nic("lan", "52:54:00:93:00:09", 10)] }), "invalid-input", /VLAN 10, but the host's bridge br0 does not filter VLANs/],
      [testSpec("kindguest009", { nics: [nic("six", "52:54:00:93:00:09", 10)] }), "invalid-input", /its network is nat: VLAN tags are for cards on bridged networks/],
      [testSpec("kindguest009", { nics: [nic("lan", "52:54:00:93:00:09", 0)] }), "invalid-input", /VLAN id is a whole number from 1 to 4094/],
      [testSpec("kindguest009", { nics: [nic("lan", "52:54:00:93:00:09", 4095)] }), "invalid-input", /VLAN id is a whole number from 1 to 4094/],
    ];
    for (const [spec, code, message] of cases) await assert.rejects(agent.client.start(spec), isCode(code, message), JSON.stringify(spec.nics));
    assert.deepEqual(taps(), []);
    for (const id of ["lan", "six"]) assert.equal(fs.existsSync(path.join(agent.dataDir, "networks", id, "ports.json")), false, `no port on ${id}`);
    assert.equal((await agent.client.guest("kindguest009")).state, "stopped");
  });

  step("a guest on the bridged network: its tap joins br0, it takes the LAN's lease and reaches the LAN", { timeout: BOOT_TIMEOUT_MS * 2 }, async () => {
    await start(lan);
    await start(six);
    assert.match(ns.run(inside, "ip", "-o", "link", "show", "dev", tapName(lan.id, 0)), /master br0 /);
    for (const g of [lan, six]) shells.set(g.id, await SerialShell.open(agent, g.id));
    const ip = await waitFor("the LAN's lease in the guest", () => /GUESTHOUSE-DHCP eth0 (192\.168\.78\.1\d\d)\/24/.exec(shell(lan).log())?.[1], 30_000, 200);
    assert.match(fs.readFileSync(lanLeases, "utf8"), new RegExp(`52:54:00:93:00:01 ${ip.replace(/\./g, "\\.")} `), "from the LAN's DHCP server, not the agent's");
    assert.match(await shell(lan).run("ping -c 1 -W 3 192.168.78.1 && echo LAN-OK"), /LAN-OK/);
    assert.deepEqual(ns.run(inside, "nft", "list", "tables").trim().split("\n").filter((t) => t.includes(tableName("lan"))), [`table bridge ${tableName("lan")}`], "its MAC is checked; nothing else of the agent's is on the LAN");
  });

  step("a guest on the IPv6 NAT network takes a SLAAC address in its /64, reaches the gateway over IPv6, and the agent lists the address", { timeout: BOOT_TIMEOUT_MS }, async () => {
    await waitFor("six's IPv4 lease", () => /GUESTHOUSE-DHCP eth0 10\.94\.0\.\d+\/24/.test(shell(six).log()), 30_000, 200);
    // Usable once duplicate address detection ends: a tentative address is never a source, and a
    // ping sent meanwhile leaves from the link-local one (the host would never see this address).
    const address = await waitFor("six's SLAAC address, past duplicate address detection", async () => new RegExp(`inet6 (${BASE}:[0-9a-f:]+)/64 scope global (?![^\\n]*tentative)`).exec(await shell(six).run("ip -6 addr show dev eth0"))?.[1], 30_000, 1_000);
    const ping = await shell(six).run(`ping -6 -c 2 -W 3 -I ${address} ${SIX.gateway} && echo PING6-OK`);
    assert.match(ping, /PING6-OK/, ping);
    assert.match(await shell(six).run("ip -6 route"), /default via fe80::/, "the host is its IPv6 router");
    const status = await waitFor("the address in the agent's status of six", async () => {
      const nics = (await agent.client.guest(six.id)).addresses ?? [];
      return nics.find((n) => n.ipv6.includes(address)) ? nics : null;
    }, 5_000, 200);
    assert.deepEqual(status.map((n) => [n.mac, n.network, n.ipv4.length, n.ipv6]), [["52:54:00:93:00:02", "six", 1, [address]]]);
  });

  step("stopped, the guests' taps go; the networks removed, br0 stays as it was", async () => {
    for (const s of shells.values()) s.close();
    shells.clear();
    for (const g of started.splice(0)) await agent.client.forceOff(g.id);
    await waitFor("every tap to go", () => taps().length === 0, 10_000);
    await agent.client.removeNetwork("lan");
    await agent.client.removeNetwork("six");
    assert.match(ns.run(inside, "ip", "-o", "-4", "addr", "show", "dev", "br0"), /192\.168\.78\.1\/24/);
    assert.equal(ns.run(inside, "nft", "list", "tables").trim(), "");
  });

  const filtering = bridgesFilterVlans();
  step("on a VLAN-filtering bridge: two guests on VLAN 10 reach each other, one on VLAN 20 reaches neither", { timeout: BOOT_TIMEOUT_MS * 2 }, async (t) => {
    if (!filtering) return t.skip("this kernel's bridges filter no VLANs (CONFIG_BRIDGE_VLAN_FILTERING is off)");
    ns.run(inside, "ip", "link", "add", "br1", "type", "bridge", "vlan_filtering", "1");
    ns.run(inside, "ip", "link", "set", "br1", "up");
    await agent.client.applyNetwork("vlans", { kind: "bridged", bridge: "br1" });
    const guests = [
      testSpec("kindguest003", { name: "a10", memoryMiB: 160, nics: [nic("vlans", "52:54:00:93:00:03", 10)] }),
      testSpec("kindguest004", { name: "b10", memoryMiB: 160, nics: [nic("vlans", "52:54:00:93:00:04", 10)] }),
      testSpec("kindguest005", { name: "c20", memoryMiB: 160, nics: [nic("vlans", "52:54:00:93:00:05", 20)] }),
    ];
    for (const g of guests) await start(g);
    for (const [i, g] of guests.entries()) {
      const vlans = JSON.parse(ns.run(inside, "bridge", "-j", "vlan", "show", "dev", tapName(g.id, 0))) as Array<{ vlans: Array<{ vlan: number; flags?: string[] }> }>;
      assert.deepEqual(vlans[0]!.vlans.map((v) => [v.vlan, [...(v.flags ?? [])].sort()]), [[(g.nics[0] as ManagedNicSpec).vlan, ["Egress Untagged", "PVID"]]]);
      shells.set(g.id, await SerialShell.open(agent, g.id));
      // No DHCP on this LAN: each guest is given its address.
      await shell(g).run(`ip addr add 192.168.79.${10 + i}/24 dev eth0 && ip link set eth0 up`);
    }
    const [a, b, c] = guests as [GuestSpec, GuestSpec, GuestSpec];
    assert.match(await shell(a).run("ping -c 2 -W 3 192.168.79.11 && echo SAME-VLAN-OK"), /SAME-VLAN-OK/, "a10 reaches b10");
    assert.match(await shell(c).run("ping -c 2 -W 2 192.168.79.10 || echo OTHER-VLAN-CUT"), /OTHER-VLAN-CUT/, "c20 reaches not a10");
    assert.match(await shell(c).run("ping -c 2 -W 2 192.168.79.11 || echo OTHER-VLAN-CUT"), /OTHER-VLAN-CUT/, "nor b10");
    assert.match(await shell(b).run("ping -c 1 -W 3 192.168.79.10 && echo BACK-OK"), /BACK-OK/);
  });
});
