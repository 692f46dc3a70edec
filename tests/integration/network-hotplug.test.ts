/**
 * Network cards plugged into and out of a running demo guest, with a real agent inside a
 * network namespace the test makes: a card on a managed network gets its port (address,
 * rules) and its tap while the guest runs, the guest takes the lease the agent chose on it
 * and answers there (its web server, from the host); a user-mode card's forward works;
 * unplugged, a card's tap and port go and the guest's first card goes on working. A stopped
 * guest, a MAC taken, a 9th card, an unknown network and a card when q35's four hot-plug
 * slots are taken are refused with nothing changed; after the agent's restart, a card
 * plugged in live unplugs cleanly.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import { nicDeviceOf } from "../../server/agent/guest-nics";
import { TAP_PREFIX, type Port } from "../../server/agent/networks/ports";
import type { GuestStatus, ManagedNicSpec, UserNicSpec } from "../../server/domain/types";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { Namespaces } from "../helpers/netns";
import { BOOT_TIMEOUT_MS, SerialShell } from "../helpers/serial-shell";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const isCode = (code: string, text?: RegExp) => (err: Error & { code?: string }) => err.code === code && (!text || text.test(err.message));
const managed = (network: string, mac: string): ManagedNicSpec => ({ mac, model: "virtio", mode: "managed", network, isolated: false, forwards: [] });
const user = (mac: string): UserNicSpec => ({ mac, model: "virtio", mode: "user", isolated: true, forwards: [] });

story("network cards plugged into and out of a running guest, the agent in a network namespace", (step) => {
  const ns = new Namespaces();
  let inside = "";
  let agent: TestAgent;
  let shell: SerialShell | null = null;
  const guest = testSpec("guesthp000001", { name: "plug-1", memoryMiB: 160, nics: [managed("hpa", "52:54:00:94:00:01")] });
  // Eight cards already (the most), one of them on hpa: kept paused, it never needs to boot.
  const full = testSpec("guesthp000002", {
    name: "full-1",
    memoryMiB: 160,
    nics: [managed("hpa", "52:54:00:94:00:b1"), ...Array.from({ length: 7 }, (_, i) => user(`52:54:00:94:00:c${i}`))],
  });
  const card = managed("hpb", "52:54:00:95:00:02");

  const ports = (network: string): Port[] => {
    const file = path.join(agent.dataDir, "networks", network, "ports.json");
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Port[]) : [];
  };
  const taps = () => ns.run(inside, "ip", "-o", "link", "show").split("\n").filter((l) => l.includes(TAP_PREFIX)).map((l) => l.split(":")[1]!.trim().split("@")[0]!);
  const macs = (status: GuestStatus) => status.spec?.nics.map((n) => n.mac);
  const portOfCard = () => ports("hpb").find((p) => p.mac === card.mac);

  before(async () => {
    inside = ns.add("hp");
    agent = await startTestAgent({}, { netns: inside });
  });
  after(async () => {
    shell?.close();
    for (const g of [guest, full]) await agent?.client.forceOff(g.id).catch(() => {});
    await agent?.cleanup();
    ns.cleanup();
  });

  step("a guest with one card on a NAT network boots and takes its lease", { timeout: BOOT_TIMEOUT_MS * 2 }, async () => {
    await agent.client.applyNetwork("hpa", { kind: "nat", subnet: "10.94.0.0/24", dhcp: "auto", domain: "hpa.internal" });
    await agent.client.applyNetwork("hpb", { kind: "nat", subnet: "10.95.0.0/24", dhcp: "auto", domain: "hpb.internal" });
    await agent.client.start(guest);
    shell = await SerialShell.open(agent, guest.id);
    const ip = ports("hpa").find((p) => p.guest === guest.id)!.ip;
    await waitFor("its lease on eth0", () => shell!.log().includes(`GUESTHOUSE-DHCP eth0 ${ip}/24`), 30_000, 200);
  });

  step("a second card plugged in on another network: its port, its tap on the bridge, the lease the agent chose on eth1, reached there; set_link finds it", { timeout: 60_000 }, async () => {
    const status = await agent.client.plugNic(guest.id, card);
    assert.deepEqual(macs(status), [guest.nics[0]!.mac, card.mac]);
    const port = portOfCard();
    assert.ok(port?.ip, "the card has a port with an address");
    assert.ok(taps().includes(port.tap), `its tap ${port.tap} exists`);
    assert.match(ns.run(inside, "ip", "-o", "link", "show", "dev", port.tap), /master gh-/);
    await waitFor("its lease on eth1", () => shell!.log().includes(`GUESTHOUSE-DHCP eth1 ${port.ip}/24`), 30_000, 200);
    assert.match(await shell!.run("ping -c 1 -W 3 -I eth1 10.95.0.1 && echo ETH1-PING-OK"), /ETH1-PING-OK/, "the guest reaches hpb's gateway on eth1");
    // The host (the namespace has no ping) reaches the guest's web server at the card's address.
    await shell!.run("echo HOTPLUGGED > /www/hp; echo MADE");
    assert.equal(ns.fetchText(inside, `http://${port.ip}/hp`, 10_000)?.trim(), "HOTPLUGGED", `the guest answers on ${port.ip}`);
    // The hot-plugged card's link, by its own device id.
    await agent.client.setLink(guest.id, 1, false);
    await agent.client.setLink(guest.id, 1, true);
    assert.equal((await agent.client.guest(guest.id)).argv?.some((a) => a.includes(nicDeviceOf(card.mac))), false, "the start's command line is unchanged");
  });

  step("unplugged: its tap and port go, the guest keeps eth0 working", { timeout: 60_000 }, async () => {
    const tap = portOfCard()!.tap;
    const status = await agent.client.unplugNic(guest.id, card.mac);
    assert.deepEqual(macs(status), [guest.nics[0]!.mac]);
    await waitFor("its tap to go", () => !taps().includes(tap), 10_000);
    assert.equal(portOfCard(), undefined);
    assert.equal(ports("hpa").filter((p) => p.guest === guest.id).length, 1);
    assert.match(await shell!.run("ip link show eth1 || echo ETH1-GONE"), /ETH1-GONE/);
    assert.match(await shell!.run("ping -c 1 -W 3 10.94.0.1 && echo ETH0-OK"), /ETH0-OK/);
  });

  step("a user-mode card with a port forward plugged in and out: the host reaches the guest's web server through it", { timeout: 60_000 }, async () => {
    const slirp: UserNicSpec = { mac: "52:54:00:96:00:03", model: "virtio", mode: "user", isolated: false, forwards: [{ protocol: "tcp", hostPort: 20580, guestPort: 80 }] };
    const status = await agent.client.plugNic(guest.id, slirp);
    assert.deepEqual(macs(status), [guest.nics[0]!.mac, slirp.mac]);
    await waitFor("its lease from QEMU's user networking", () => shell!.log().includes("GUESTHOUSE-DHCP eth1 10.0.2.15/24"), 30_000, 200);
    assert.equal(ns.fetchText(inside, "http://127.0.0.1:20580/hp", 10_000)?.trim(), "HOTPLUGGED");
    assert.deepEqual(macs(await agent.client.unplugNic(guest.id, slirp.mac)), [guest.nics[0]!.mac]);
    assert.equal(ns.fetchText(inside, "http://127.0.0.1:20580/hp", 3_000), null, "the forward went with the card");
  });

  step("refused, nothing changed: a stopped guest, a MAC taken (in the guest, on the host), a 9th card, an unknown network", { timeout: 60_000 }, async () => {
    await agent.client.start(full);
    await agent.client.pause(full.id);
    const before = { a: ports("hpa"), b: ports("hpb"), taps: taps().sort(), guest: macs(await agent.client.guest(guest.id)) };
    await assert.rejects(agent.client.plugNic("guesthp000009", card), isCode("conflict", /stopped/));
    await assert.rejects(agent.client.plugNic(guest.id, managed("hpb", guest.nics[0]!.mac)), isCode("conflict", /already has a card with the MAC address 52:54:00:94:00:01/));
    await assert.rejects(agent.client.plugNic(guest.id, managed("hpa", "52:54:00:94:00:b1")), isCode("conflict", /52:54:00:94:00:b1 is already used by a card of full-1/));
    await assert.rejects(agent.client.plugNic(full.id, card), isCode("conflict", /already has 8 network cards/));
    await assert.rejects(agent.client.plugNic(guest.id, managed("nowhere", "52:54:00:95:00:09")), isCode("not-found", /not set up on this host/));
    await assert.rejects(agent.client.unplugNic(guest.id, "52:54:00:95:00:09"), isCode("not-found", /no card with the MAC address/));
    await assert.rejects(agent.client.unplugNic(guest.id, guest.nics[0]!.mac), isCode("conflict", /built-in PCIe bus/));
    assert.deepEqual({ a: ports("hpa"), b: ports("hpb"), taps: taps().sort(), guest: macs(await agent.client.guest(guest.id)) }, before);
    await agent.client.forceOff(full.id);
  });

  step("the four hot-plug slots of q35 taken by cards: a fifth is refused, nothing changed; all four unplug again", { timeout: 90_000 }, async () => {
    const cards = Array.from({ length: 4 }, (_, i) => user(`52:54:00:97:00:0${i}`));
    for (const c of cards) await agent.client.plugNic(guest.id, c);
    const before = macs(await agent.client.guest(guest.id));
    assert.equal(before?.length, 5);
    await assert.rejects(agent.client.plugNic(guest.id, user("52:54:00:97:00:09")), isCode("conflict", /All 4 hot-plug slots of this guest are taken/));
    assert.deepEqual(macs(await agent.client.guest(guest.id)), before);
    for (const c of cards) await agent.client.unplugNic(guest.id, c.mac);
    assert.deepEqual(macs(await agent.client.guest(guest.id)), [guest.nics[0]!.mac]);
  });

  step("plugged in again, the agent killed and started again: the card unplugs cleanly", { timeout: 60_000 }, async () => {
    await agent.client.plugNic(guest.id, card);
    const tap = portOfCard()!.tap;
    assert.ok(taps().includes(tap));
    await agent.kill();
    await agent.restart();
    assert.deepEqual(macs(await agent.client.guest(guest.id)), [guest.nics[0]!.mac, card.mac], "the adopted guest runs both cards");
    const status = await agent.client.unplugNic(guest.id, card.mac);
    assert.deepEqual(macs(status), [guest.nics[0]!.mac]);
    await waitFor("its tap to go", () => !taps().includes(tap), 10_000);
    assert.equal(portOfCard(), undefined);
    assert.match(await shell!.run("ping -c 1 -W 3 10.94.0.1 && echo STILL-OK"), /STILL-OK/);
  });
});
