/**
 * Network cards plugged into and out of a running guest (server/agent/guest-nics.ts),
 * against a stand-in for QEMU's QMP and the networks: which port a card takes (the disk
 * and card tables and what QEMU lists behind each port), its device's id, and every step
 * undone when a later one fails. The real thing, with taps and a demo guest, is
 * tests/integration/network-hotplug.test.ts.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { GuestNics, nicDeviceOf } from "../../server/agent/guest-nics";
import { startNics, SupervisedGuest } from "../../server/agent/guest-state";
import type { GuestSpec, ManagedNicSpec, UserNicSpec } from "../../server/domain/types";
import { QmpCommandError, type QmpClient } from "../../server/qemu/qmp";
import { testSpec } from "../helpers/specs";

const user = (mac: string): UserNicSpec => ({ mac, model: "virtio", mode: "user", isolated: false, forwards: [] });
const managed = (mac: string): ManagedNicSpec => ({ mac, model: "virtio", mode: "managed", network: "lab", isolated: false, forwards: [] });

/** QMP as far as the card code uses it: every command logged, some refused, query-pci as given. */
class FakeQmp extends EventEmitter {
  readonly sent: Array<[string, unknown]> = [];
  refuse = new Set<string>();
  pci: unknown[] = [{ bus: 0, devices: [] }];
  async execute(command: string, args?: unknown): Promise<unknown> {
    this.sent.push([command, args]);
    if (this.refuse.has(command)) throw new QmpCommandError(command, "GenericError", `${command} refused here`);
    if (command === "qom-list") return ["hotplug0", "hotplug1", "hotplug2", "hotplug3", "nic0"].map((name) => ({ name, type: "child<x>" }));
    if (command === "query-pci") return this.pci;
    return {};
  }
}

describe("network cards of a running guest", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-nics-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function running(spec: GuestSpec): { guest: SupervisedGuest; qmp: FakeQmp } {
    const guest = new SupervisedGuest(spec.id, path.join(dir, spec.id), path.join(dir, spec.id));
    fs.mkdirSync(guest.stateDir, { recursive: true });
    const qmp = new FakeQmp();
    guest.state = "running";
    guest.spec = spec;
    guest.nics = startNics(spec.nics);
    guest.qmp = qmp as unknown as QmpClient;
    return { guest, qmp };
  }
  /** `fail`: the networks refuse; `portless`: they give this MAC no port (a later step fails; no helper runs, no tap is made). */
  const nicsOf = (guest: SupervisedGuest, plugs: Array<unknown> = [], fail: Error | null = null, portless: string | null = null) =>
    new GuestNics({
      guest: (id) => (id === guest.id ? guest : undefined),
      networks: {
        plug: async (g, cards) => {
          plugs.push(cards.map((c) => `${c.index}:${c.mac}`));
          if (fail) throw fail;
          return cards.filter((c) => c.mac !== portless).map((c) => ({ ...c, tap: `tap${c.index}`, bridge: "br", ip: null, guest: g.id, name: g.name }));
        },
        unplug: async () => {
          plugs.push("unplugged");
        },
      },
      assertForwards: () => {},
      forwardAddress: null,
      changed: () => {},
    });

  test("a user-mode card on q35 takes the first port nothing holds (a disk's, or a device QEMU lists behind one, count) and is named after its MAC", async () => {
    const { guest, qmp } = running(testSpec("guestnic00001", { nics: [user("52:54:00:00:00:01")] }));
    guest.disks.disks.vol = { id: "disk5", opened: "node", device: "disk5", port: "hotplug0", detaching: false };
    qmp.pci = [{ bus: 0, devices: [{ qdev_id: "hotplug1", pci_bridge: { devices: [{ qdev_id: "someone" }] } }, { qdev_id: "hotplug2", pci_bridge: { devices: [] } }] }];
    const status = await nicsOf(guest).plug(guest.id, user("52:54:00:00:00:02"));
    assert.deepEqual(status.spec?.nics.map((n) => n.mac), ["52:54:00:00:00:01", "52:54:00:00:00:02"]);
    const device = qmp.sent.find(([c]) => c === "device_add")![1] as Record<string, string>;
    assert.deepEqual(device, { driver: "virtio-net-pci", id: nicDeviceOf("52:54:00:00:00:02"), netdev: "net-525400000002", mac: "52:54:00:00:00:02", bus: "hotplug2" });
    assert.equal(device.id, "nic-525400000002");
    assert.deepEqual(guest.nics.nics.map((n) => [n.device, n.port, n.slot]), [["nic0", null, 0], ["nic-525400000002", "hotplug2", 1]]);
    // Kept for the next agent.
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(guest.stateDir, "nics.json"), "utf8")), guest.nics);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(guest.stateDir, "spec.json"), "utf8")).nics.length, 2);
    assert.equal(nicsOf(guest).deviceOf(guest, 1), "nic-525400000002");
    assert.equal(nicsOf(guest).deviceOf(guest, 0), "nic0");
  });

  test("on pc the device goes on the PCI bus (no port)", async () => {
    const { guest, qmp } = running(testSpec("guestnic00002", { machine: "pc", nics: [] }));
    await nicsOf(guest).plug(guest.id, user("52:54:00:00:00:03"));
    const device = qmp.sent.find(([c]) => c === "device_add")![1] as Record<string, string>;
    assert.equal("bus" in device, false);
  });

  test("a device QEMU refuses: its netdev goes again, the spec and the card table are as they were", async () => {
    const { guest, qmp } = running(testSpec("guestnic00003", { nics: [user("52:54:00:00:00:01")] }));
    qmp.refuse.add("device_add");
    const before = structuredClone({ spec: guest.spec, nics: guest.nics.nics });
    await assert.rejects(nicsOf(guest).plug(guest.id, user("52:54:00:00:00:04")), (err: Error & { code?: string }) => err.code === "qmp-error" && /could not plug the card 52:54:00:00:00:04 in: device_add refused here/.test(err.message));
    assert.deepEqual(qmp.sent.filter(([c]) => c.startsWith("netdev")), [["netdev_add", { type: "user", id: "net-525400000004" }], ["netdev_del", { id: "net-525400000004" }]]);
    assert.deepEqual({ spec: guest.spec, nics: guest.nics.nics }, before);
  });

  test("a managed card the network refuses: QEMU is asked nothing; a later step failing: the ports go back as they were", async () => {
    const { guest, qmp } = running(testSpec("guestnic00004", { nics: [managed("52:54:00:00:00:01")] }));
    const plugs: unknown[] = [];
    await assert.rejects(nicsOf(guest, plugs, new Error("MAC taken")).plug(guest.id, managed("52:54:00:00:00:05")), /MAC taken/);
    assert.deepEqual(plugs, [["0:52:54:00:00:00:01", "1:52:54:00:00:00:05"]]);
    assert.equal(qmp.sent.some(([c]) => c === "netdev_add" || c === "device_add"), false);
    plugs.length = 0;
    await assert.rejects(nicsOf(guest, plugs, null, "52:54:00:00:00:06").plug(guest.id, managed("52:54:00:00:00:06")), /did not give the card 52:54:00:00:00:06 a port/);
    assert.deepEqual(plugs, [["0:52:54:00:00:00:01", "2:52:54:00:00:00:06"], ["0:52:54:00:00:00:01"]]);
    assert.deepEqual(guest.spec!.nics.map((n) => n.mac), ["52:54:00:00:00:01"]);
    assert.equal(qmp.sent.some(([c]) => c === "netdev_add" || c === "device_add"), false);
  });

  test("refused before anything: a stopped guest, a MAC it has, a ninth card, the start's card on q35's own bus", async () => {
    const { guest, qmp } = running(testSpec("guestnic00005", { nics: Array.from({ length: 8 }, (_, i) => user(`52:54:00:00:01:0${i}`)) }));
    const nics = nicsOf(guest);
    await assert.rejects(nics.plug("guestnic00099", user("52:54:00:00:00:07")), /stopped/);
    await assert.rejects(nics.plug(guest.id, user("52:54:00:00:01:00")), /already has a card with the MAC address/);
    await assert.rejects(nics.plug(guest.id, user("52:54:00:00:00:07")), /already has 8 network cards/);
    await assert.rejects(nics.unplug(guest.id, "52:54:00:00:01:03"), /built-in PCIe bus/);
    await assert.rejects(nics.unplug(guest.id, "52:54:00:00:09:09"), /no card with the MAC address/);
    assert.deepEqual(qmp.sent, []);
  });
});
