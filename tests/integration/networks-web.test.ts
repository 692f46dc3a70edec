/**
 * A team's managed networks through the web's operations (server/web/networks.ts), with
 * a real database and a real agent run inside a network namespace the test makes: made
 * by a member and set up on the host; refused (bad input, overlaps, a route of the host,
 * a viewer) with nothing left behind; invisible to another team; a guest's card put on
 * one becomes a tap on its bridge when the guest starts; removal refused while cards are
 * on it, and then leaving nothing on the host.
 * On a bridged network, a member is refused; an admin makes one on the namespace's br0 for
 * the team (the row carries the kind, bridge and VLANs), one on a bridge the host lacks is
 * refused with its row gone; the team's members put cards on it with a VLAN it grants (and
 * are refused others), cannot remove it or give it rules; removed, br0 stays. IPv6: a
 * member's NAT network with IPv6 carries its /64 in the row, the page's view and on the host.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import type { SessionUser } from "../../server/auth/sessions";
import { bridgeName } from "../../server/agent/networks/nft";
import { planIpv6 } from "../../server/domain/network-plan";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { createTestDb, twoTeams, useAsProcessDatabase, type TestDb } from "../helpers/db";
import { Namespaces } from "../helpers/netns";
import { testDefinition } from "../helpers/specs";
import { story } from "../helpers/story";

const refused = (code: string, text?: RegExp) => (err: Error & { code?: string }) => err.code === code && (!text || text.test(err.message));

story("a team's managed networks through the web, the agent in a network namespace", (step) => {
  const ns = new Namespaces();
  let inside = "";
  let agent: TestAgent;
  let database: TestDb;
  let member: SessionUser;
  let viewer: SessionUser;
  let stranger: SessionUser;
  let admin: SessionUser;
  let web: typeof import("../../server/web/networks");
  let ops: typeof import("../../server/web/guest-ops");
  let power: typeof import("../../server/web/power");
  let lab = "";
  let six = "";
  let guestId = "";

  before(async () => {
    inside = ns.add("w");
    ns.run(inside, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    agent = await startTestAgent({}, { netns: inside });
    database = await createTestDb();
    useAsProcessDatabase(database);
    web = await import("../../server/web/networks");
    ops = await import("../../server/web/guest-ops");
    power = await import("../../server/web/power");
    const db = database.db;
    await db.host.create({ data: { name: "local", endpoint: `unix:${agent.socketPath}` } });
    ({ member, viewer, stranger, admin } = await twoTeams(db));
  });
  after(async () => {
    if (guestId) await agent?.client.forceOff(guestId).catch(() => {});
    await agent?.cleanup();
    await database?.cleanup();
    ns.cleanup();
  });

  step("a member makes a NAT network of the team: its row, and on the host its bridge and dnsmasq", async () => {
    ({ id: lab } = await web.createNetwork(member, { name: "lab", kind: "nat", subnet: "10.93.0.0/24", dhcp: "auto", domain: "lab.internal" }));
    const view = await web.loadNetwork(member, lab);
    assert.deepEqual([view.kind, view.subnet, view.gateway, view.dhcp, view.domain, view.team], ["nat", "10.93.0.0/24", "10.93.0.1", { start: "10.93.0.128", end: "10.93.0.254" }, "lab.internal", "alpha"]);
    const onHost = await agent.client.networks();
    assert.deepEqual(onHost.map((n) => [n.id, n.subnet, n.dnsmasq]), [[lab, "10.93.0.0/24", true]]);
    assert.equal(ns.ok(inside, "ip", "link", "show", bridgeName(lab)), true);
    assert.equal(await database.db.event.count({ where: { kind: "network-create", ok: true } }), 1, "audited");
  });

  step("bad input is refused, naming what is wrong, and nothing is made", async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ name: "x", kind: "nat", subnet: "10.94.0.0/33", dhcp: "auto", domain: "x.internal" }, /not an IPv4 subnet/],
      [{ name: "x", kind: "nat", subnet: "8.8.8.0/24", dhcp: "auto", domain: "x.internal" }, /not a private range/],
      [{ name: "x", kind: "nat", subnet: "10.94.0.1/24", dhcp: "auto", domain: "x.internal" }, /host bits set/],
      [{ name: "x", kind: "nat", subnet: "10.94.0.0/24", dhcp: { start: "10.94.1.10", end: "10.94.1.20" }, domain: "x.internal" }, /DHCP range/],
      [{ name: "x", kind: "nat", subnet: "10.94.0.0/24", dhcp: "none", domain: "x.internal" }, /NAT network hands out addresses/],
      [{ name: "user", kind: "nat", subnet: "10.94.0.0/24", dhcp: "auto", domain: "x.internal" }, /user-mode network every team has/],
      [{ name: "Not Ok", kind: "nat", subnet: "10.94.0.0/24", dhcp: "auto", domain: "x.internal" }, /network's name/],
      [{ name: "x", kind: "routed", subnet: "10.94.0.0/24", dhcp: "auto", domain: "x.internal" }, /kind is "nat", "isolated" or "bridged"/],
      [{ name: "x", kind: "nat", subnet: "10.94.0.0/24", dhcp: "auto", domain: "not a domain" }, /DNS domain/],
    ];
    for (const [input, message] of bad) await assert.rejects(web.createNetwork(member, input), refused("invalid-input", message), JSON.stringify(input));
    await assert.rejects(web.createNetwork(member, { name: "lab", kind: "nat", subnet: "10.95.0.0/24", dhcp: "auto", domain: "x.internal" }), refused("conflict", /already has a network named "lab"/));
    assert.equal(await database.db.network.count({ where: { mode: { not: "user" } } }), 1);
    assert.equal((await agent.client.networks()).length, 1);
  });

  step("a viewer makes none; another team neither sees the network nor learns its name from an overlap", async () => {
    await assert.rejects(web.createNetwork(viewer, { name: "mine", kind: "isolated", subnet: "10.96.0.0/24", dhcp: "none", domain: "v.internal" }), refused("forbidden"));
    assert.deepEqual((await web.listNetworks(stranger)).map((n) => n.name), []);
    await assert.rejects(web.loadNetwork(stranger, lab), refused("not-found"));
    await assert.rejects(web.deleteNetwork(stranger, lab), refused("not-found"));
    await assert.rejects(
      web.createNetwork(stranger, { name: "theirs", kind: "nat", subnet: "10.93.0.0/25", dhcp: "auto", domain: "b.internal" }),
      (err: Error & { code?: string }) => err.code === "conflict" && /another team's network/.test(err.message) && !/lab/.test(err.message),
    );
  });

  step("a subnet over a route of the host is refused by the agent, naming the route; the row goes again", async () => {
    ns.run(inside, "ip", "link", "add", "vpn0", "type", "veth", "peer", "name", "vpn1");
    ns.run(inside, "ip", "addr", "add", "10.97.0.1/24", "dev", "vpn0");
    ns.run(inside, "ip", "link", "set", "vpn0", "up");
    await assert.rejects(web.createNetwork(member, { name: "clash", kind: "nat", subnet: "10.97.0.0/24", dhcp: "auto", domain: "c.internal" }), refused("conflict", /vpn0/));
    assert.equal(await database.db.network.count({ where: { name: "clash" } }), 0);
    assert.equal((await agent.client.networks()).length, 1);
    assert.equal(await database.db.event.count({ where: { kind: "network-create", ok: false } }), 1, "the refusal is audited");
  });

  step("a guest's card on the network becomes a tap on its bridge when it starts; the page lists the card", async () => {
    await assert.rejects(ops.createGuest(stranger, testDefinition("elsewhere", [], { nics: [{ model: "virtio", network: "lab", isolated: false, forwards: [] }] })), refused("invalid-input", /no network of that name/));
    // What every entry point parses a definition with (the form, an import, the API).
    const { guestDefinitionSchema, parseOrThrow } = await import("../../server/domain/validation");
    assert.throws(
      () => parseOrThrow(guestDefinitionSchema, testDefinition("fwd", [], { nics: [{ model: "virtio", network: "lab", isolated: false, forwards: [{ protocol: "tcp", hostPort: 20022, guestPort: 22 }] }] }), "The guest"),
      refused("invalid-input", /network's port forwards/),
    );
    ({ id: guestId } = await ops.createGuest(member, testDefinition("netguest", [], { cdroms: [{ iso: "demo.iso" }], bootOrder: ["cdrom"], nics: [{ model: "virtio", network: "lab", isolated: false, forwards: [] }] })));
    const view = await web.loadNetwork(member, lab);
    assert.deepEqual(view.nics.map((n) => [n.guest, n.position]), [["netguest", 0]]);
    await power.powerGuest(member, guestId, "start");
    const port = await waitFor("the guest's port on the network", async () => (await agent.client.guest(guestId)).argv?.some((a) => a.startsWith("tap,")), 10_000);
    assert.ok(port);
    assert.match(ns.run(inside, "ip", "-o", "link", "show", "master", bridgeName(lab)), /ght[0-9a-f]{12}/);
    const addresses = await web.networkAddresses(member, lab);
    assert.deepEqual(addresses.rows[0], { ip: "10.93.0.1", use: "gateway", mac: null, holder: "this host", expires: null });
    assert.equal(addresses.rangeSize, 127);
  });

  step("forwards and rules: saved and applied together; a card not on the network, a stale version, a port the host refuses are refused and nothing changes", async () => {
    const mac = (await database.db.nic.findFirstOrThrow({ where: { guestId } })).mac;
    let view = await web.loadNetwork(member, lab);
    assert.deepEqual(view.firewall, { defaultIn: "deny", defaultOut: "allow", rules: [] });
    const forward = { protocol: "tcp" as const, hostPort: 20180, mac, guestPort: 80 };
    const rule = { id: "r1", action: "deny" as const, direction: "in" as const, protocol: "tcp" as const, ports: { from: 22, to: 22 }, cidr: null, mac: null, comment: "" };
    await assert.rejects(web.updateNetworkRules(member, lab, { forwards: [{ ...forward, mac: "52:54:00:ee:ee:ee" }], firewall: view.firewall }, view.updatedAt), refused("invalid-input", /No card with the MAC address 52:54:00:ee:ee:ee is on lab/));
    await assert.rejects(web.updateNetworkRules(viewer, lab, { forwards: [], firewall: view.firewall }, view.updatedAt), refused("forbidden"));
    await assert.rejects(web.updateNetworkRules(stranger, lab, { forwards: [], firewall: view.firewall }, view.updatedAt), refused("not-found"));
    await web.updateNetworkRules(member, lab, { forwards: [forward], firewall: { ...view.firewall, rules: [rule] } }, view.updatedAt);
    const applied = ns.run(inside, "nft", "list", "table", "inet", `guesthouse_${lab}`);
    assert.match(applied, /tcp dport 20180 .*dnat ip to 10\.93\.0\.\d+:80/);
    assert.match(applied, /tcp dport 22 counter packets \d+ bytes \d+ drop comment "rule:r1"/);
    assert.deepEqual(Object.keys((await web.networkCounters(member, lab)).rules), ["r1"]);
    await assert.rejects(web.updateNetworkRules(member, lab, { forwards: [], firewall: view.firewall }, view.updatedAt), refused("stale"), "a change made on an older read");
    view = await web.loadNetwork(member, lab);
    // The agent's range is 20000-29999 by default: 30000 is refused there, and the row is put back.
    await assert.rejects(web.updateNetworkRules(member, lab, { forwards: [{ ...forward, hostPort: 30000 }], firewall: view.firewall }, view.updatedAt), refused("invalid-input", /outside the ports this host forwards/));
    assert.deepEqual((await web.loadNetwork(member, lab)).forwards, [forward]);
    assert.equal(ns.run(inside, "nft", "list", "table", "inet", `guesthouse_${lab}`).includes("dport 30000"), false);
    // A user-mode card cannot take the network's port, and another team is told only that another team's network has it.
    const { assertPortsFree } = await import("../../server/web/guest-factory");
    const host = await database.db.host.findFirstOrThrow({ where: { name: "local" } });
    await assert.rejects(assertPortsFree(stranger, host, null, [{ protocol: "tcp", hostPort: 20180, guestPort: 22 }]), refused("conflict", /another team's network/));
    // The demo guest's web server answers once it has booted and taken its lease.
    const result = await waitFor("the guest's web server through the forward", async () => {
      const tried = await web.testNetworkForward(member, lab, "tcp", 20180);
      return tried.answered ? tried : null;
    }, 90_000, 1_000);
    assert.match(result.message, /The guest answered on tcp port 20180/);
    await assert.rejects(web.testNetworkForward(stranger, lab, "tcp", 20180), refused("not-found"));
    await web.setCardLink(member, guestId, 0, false);
    await web.setCardLink(member, guestId, 0, true);
    await assert.rejects(web.setCardLink(viewer, guestId, 0, false), refused("forbidden"));
    await assert.rejects(web.setCardLink(member, guestId, 5, false), refused("not-found", /no network card 6/));
    view = await web.loadNetwork(member, lab);
    await web.updateNetworkRules(member, lab, { forwards: [], firewall: { defaultIn: "deny", defaultOut: "allow", rules: [] } }, view.updatedAt);
  });

  step("a card's reservation: its address and host name go to the host at once (its port too, as it runs); bad addresses, a viewer and another team are refused", async () => {
    const card = await database.db.nic.findFirstOrThrow({ where: { guestId } });
    const hostsFile = () => fs.readFileSync(path.join(agent.dataDir, "run", "networks", `${lab}.hosts`), "utf8");
    const portIp = () => (JSON.parse(fs.readFileSync(path.join(agent.dataDir, "networks", lab, "ports.json"), "utf8")) as Array<{ mac: string; ip: string }>).find((p) => p.mac === card.mac)?.ip;
    await web.reserveCard(member, guestId, 0, { ip: "10.93.0.200", name: "front" });
    assert.deepEqual(await database.db.nic.findUniqueOrThrow({ where: { id: card.id }, select: { reservedIp: true, hostName: true } }), { reservedIp: "10.93.0.200", hostName: "front" });
    assert.match(hostsFile(), new RegExp(`^${card.mac},10\\.93\\.0\\.200,front$`, "m"));
    assert.equal(portIp(), "10.93.0.200", "the running card's port has it (its rules follow)");
    assert.equal((await web.loadNetwork(member, lab)).nics[0]!.reservedIp, "10.93.0.200");
    for (const [ip, message] of [["10.94.0.5", /not an address of lab/], ["10.93.0.1", /gateway/], ["10.93.0.255", /broadcast/], ["not an ip", /not an address/]] as const) {
      await assert.rejects(web.reserveCard(member, guestId, 0, { ip, name: null }), refused("invalid-input", message), ip);
    }
    await assert.rejects(web.reserveCard(member, guestId, 0, { ip: "10.93.0.201", name: "Not A Label" }), refused("invalid-input", /host name/));
    await assert.rejects(web.reserveCard(viewer, guestId, 0, { ip: "10.93.0.201", name: null }), refused("forbidden"));
    await assert.rejects(web.reserveCard(stranger, guestId, 0, { ip: "10.93.0.201", name: null }), refused("not-found"));
    assert.equal(portIp(), "10.93.0.200", "nothing changed");
    // Given back: the row and the host's spec forget it (the running card keeps its address until it stops).
    await web.reserveCard(member, guestId, 0, { ip: null, name: null });
    assert.equal((await database.db.nic.findUniqueOrThrow({ where: { id: card.id } })).reservedIp, null);
    assert.equal(JSON.parse(fs.readFileSync(path.join(agent.dataDir, "networks", lab, "spec.json"), "utf8")).reservations, undefined);
  });

  step("a card added to the running guest's hardware is plugged in at once, on its network's bridge; removed again, it is unplugged", async () => {
    const { definitionOf, loadGuest } = await import("../../server/web/guests");
    const hardwareOf = async (extra: Array<{ model: "virtio"; network: string; isolated: false; forwards: [] }>) => {
      const row = await loadGuest(member, guestId, "change");
      const { guesthouse: _v, name: _n, disks: _d, nics, ...hardware } = definitionOf(row);
      return { ...hardware, disks: [], nics: [...nics.map((n, i) => ({ ...n, mac: row.nics[i]!.mac })), ...extra] };
    };
    const taps = () => ns.run(inside, "ip", "-o", "link", "show", "master", bridgeName(lab)).split("\n").filter((l) => /ght/.test(l)).length;
    assert.equal(taps(), 1);
    await ops.editHardware(member, guestId, await hardwareOf([{ model: "virtio", network: "lab", isolated: false, forwards: [] }]));
    assert.equal((await agent.client.guest(guestId)).spec?.nics.length, 2, "the running guest has the card");
    assert.equal(taps(), 2, "its tap is on the bridge");
    assert.equal(await database.db.nic.count({ where: { guestId } }), 2);
    await ops.editHardware(member, guestId, { ...(await hardwareOf([])), nics: (await hardwareOf([])).nics.slice(0, 1) });
    assert.equal((await agent.client.guest(guestId)).spec?.nics.length, 1, "unplugged");
    await waitFor("its tap to go", () => taps() === 1, 10_000);
    assert.equal(await database.db.nic.count({ where: { guestId } }), 1);
    assert.equal(await database.db.event.count({ where: { kind: "edit", message: { contains: "plugged in while it ran" } } }), 1, "audited");
  });

  step("removal is refused while a card is on it; once the card moves, it goes and leaves nothing on the host", async () => {
    await assert.rejects(web.deleteNetwork(member, lab), refused("conflict", /netguest/));
    await agent.client.forceOff(guestId);
    await waitFor("the guest's tap to go", () => !/ght/.test(ns.run(inside, "ip", "-o", "link", "show")), 10_000);
    const guest = await database.db.guest.findUniqueOrThrow({ where: { id: guestId } });
    const { definitionOf, loadGuest } = await import("../../server/web/guests");
    const row = await loadGuest(member, guestId, "change");
    const { guesthouse: _v, name: _n, disks: _d, nics, ...hardware } = definitionOf(row);
    await ops.editHardware(member, guestId, { ...hardware, disks: [], nics: nics.map((n, i) => ({ mac: row.nics[i]!.mac, model: n.model, network: "user", isolated: false, forwards: [] })) });
    assert.ok((await database.db.guest.findUniqueOrThrow({ where: { id: guest.id } })).updatedAt > guest.updatedAt);
    await web.deleteNetwork(member, lab);
    assert.equal(await database.db.network.count({ where: { id: lab } }), 0);
    assert.deepEqual(await agent.client.networks(), []);
    assert.equal(ns.ok(inside, "ip", "link", "show", bridgeName(lab)), false);
    assert.equal(await database.db.event.count({ where: { kind: "network-delete", ok: true } }), 1);
    await assert.rejects(web.deleteNetwork(member, (await web.listNetworks(member)).find((n) => n.kind === "user")!.id), refused("conflict", /built in/));
  });
  step("IPv6: a member's NAT network with IPv6 carries its /64 in the row, the view and on the host", async () => {
    ({ id: six } = await web.createNetwork(member, { name: "six", kind: "nat", subnet: "10.98.0.0/24", dhcp: "auto", domain: "six.internal", ipv6: true }));
    const prefix = planIpv6(six).prefix;
    assert.equal((await database.db.network.findUniqueOrThrow({ where: { id: six } })).ipv6, true);
    assert.equal((await web.loadNetwork(member, six)).ipv6, prefix);
    assert.equal((await agent.client.networks()).find((n) => n.id === six)?.ipv6, prefix);
    assert.match(ns.run(inside, "ip", "-6", "addr", "show", "dev", bridgeName(six), "scope", "global"), new RegExp(`inet6 ${prefix.replace("::/64", "::1")}/64`));
  });

  step("bridged: a member is refused; an admin makes one on the host's br0 for the team, and one on a bridge the host lacks is refused, its row gone", async () => {
    ns.run(inside, "ip", "link", "add", "br0", "type", "bridge");
    ns.run(inside, "ip", "link", "set", "br0", "up");
    const lanInput = { name: "lan", kind: "bridged", bridge: "br0", vlans: "20-29, 10" };
    await assert.rejects(web.createNetwork(member, lanInput), refused("forbidden", /Only an admin makes a bridged network/));
    await assert.rejects(web.createNetwork(admin, { ...lanInput, bridge: "br9" }), refused("invalid-input", /This host has no interface br9/));
    await assert.rejects(web.createNetwork(admin, { ...lanInput, vlans: "10, 4095" }), refused("invalid-input", /1 to 4094/));
    assert.equal(await database.db.network.count({ where: { mode: "bridged" } }), 0, "nothing is left of the refused ones");
    const { id } = await web.createNetwork(admin, lanInput);
    const row = await database.db.network.findUniqueOrThrow({ where: { id } });
    assert.deepEqual([row.mode, row.bridge, row.vlans, row.subnet, row.domain, row.teamId], ["bridged", "br0", "10,20-29", null, null, member.teamId]);
    const view = await web.loadNetwork(member, id);
    assert.deepEqual([view.kind, view.bridge, view.vlans, view.mayChange, view.mayDelete], ["bridged", "br0", "10,20-29", false, false], "its team sees it and changes nothing of it");
    assert.equal((await web.loadNetwork(admin, id)).mayDelete, true);
    assert.deepEqual((await agent.client.networks()).find((n) => n.id === id), { id, kind: "bridged", subnet: null, bridge: "br0", gateway: null, dhcp: null, domain: null, ipv6: null, dnsmasq: false });
  });

  step("bridged: the team's members put cards on it with a VLAN it grants, not another; they neither remove it nor give it rules; removed (and six), br0 stays", async () => {
    const lan = (await web.listNetworks(member)).find((n) => n.name === "lan")!;
    const card = (vlan?: number, network = "lan") => ({ model: "virtio" as const, network, ...(vlan !== undefined ? { vlan } : {}), isolated: false, forwards: [] });
    await assert.rejects(ops.createGuest(member, testDefinition("tagged", [], { nics: [card(15)] })), refused("invalid-input", /VLAN 15, which lan does not let its cards use \(only 10,20-29\)/));
    await assert.rejects(ops.createGuest(member, testDefinition("tagged", [], { nics: [card(10, "six")] })), refused("invalid-input", /six is a NAT network: VLAN tags are for cards on bridged networks/));
    const { id: tagged } = await ops.createGuest(member, testDefinition("tagged", [], { nics: [card(21)] }));
    assert.deepEqual(await database.db.nic.findMany({ where: { guestId: tagged }, select: { vlan: true, networkId: true } }), [{ vlan: 21, networkId: lan.id }]);
    const { definitionOf, loadGuest, specOf } = await import("../../server/web/guests");
    const row = await loadGuest(member, tagged, "change");
    assert.deepEqual(specOf(row).nics[0], { mac: row.nics[0]!.mac, model: "virtio", mode: "managed", network: lan.id, vlan: 21, isolated: false, forwards: [] }, "the agent is told the card's VLAN");
    const { guesthouse: _v, name: _n, disks: _d, nics, ...hardware } = definitionOf(row);
    assert.equal(nics[0]!.vlan, 21, "an export keeps it");
    await assert.rejects(ops.editHardware(member, tagged, { ...hardware, disks: [], nics: [{ ...card(30), mac: row.nics[0]!.mac }] }), refused("invalid-input", /VLAN 30/));
    assert.deepEqual((await web.loadNetwork(member, lan.id)).nics.map((n) => [n.guest, n.vlan]), [["tagged", 21]]);
    await assert.rejects(web.deleteNetwork(member, lan.id), refused("forbidden", /Only an admin removes a bridged network/));
    const view = await web.loadNetwork(admin, lan.id);
    await assert.rejects(web.updateNetworkRules(admin, lan.id, { forwards: [], firewall: view.firewall }, view.updatedAt), refused("conflict", /no rules or forwards here/));
    await assert.rejects(web.deleteNetwork(admin, lan.id), refused("conflict", /tagged/));
    await ops.deleteGuest(member, tagged, false);
    await web.deleteNetwork(admin, lan.id);
    assert.equal(await database.db.network.count({ where: { mode: "bridged" } }), 0);
    assert.equal(ns.ok(inside, "ip", "link", "show", "br0"), true, "the host's bridge stays");
    await web.deleteNetwork(member, six);
    assert.deepEqual(await agent.client.networks(), [], "nothing is left on the host");
  });
});
