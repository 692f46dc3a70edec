/**
 * Network cards plugged into and out of a running guest, through QMP, taking turns with
 * the guest's disk operations (they share its hot-plug root ports on q35).
 *
 * A card on a managed network: the guest's ports are plugged again with the new card
 * among them (so it gets its port, address and rules, and the network checks its MAC is
 * nobody else's), its tap is made and handed to QEMU by a helper (server/agent/add-tap.py:
 * Node can neither make a tap nor send a descriptor), which also makes its `netdev_add`
 * (tap, fd=<the name getfd gave it>: such a name is known only to the monitor it came on),
 * then the agent's `device_add`. A user-mode card is `netdev_add` user.
 * Cards plugged in live are named after their MAC (nicDeviceOf), so they never collide
 * with the nic<i> of the cards the guest started with; the guest's card table
 * (guest-state.ts, nics.json) says how QEMU names each card, for set_link, unplugs and
 * an agent started later. Every step is undone if a later one fails.
 */
import { fileURLToPath } from "node:url";
import { GuesthouseError } from "../domain/errors";
import type { GuestSpec, GuestStatus, NicSpec } from "../domain/types";
import { guestSpecSchema, LIMITS_DEVICES, parseOrThrow } from "../domain/validation";
import { hotplugPorts, NIC_DEVICES } from "../qemu/args";
import { nextEvent, peripherals, QmpCommandError, type QmpClient } from "../qemu/qmp";
import type { NicTable, PluggedNic, SupervisedGuest } from "./guest-state";
import type { Networks, NicToPlug } from "./networks/manager";
import { runPythonHelper } from "./fd-passing";

const HELPER = fileURLToPath(new URL("./add-tap.py", import.meta.url));
/** How long a guest has to let go of an unplugged card before the agent says so. */
const UNPLUG_TIMEOUT_MS = 10_000;

/** The device id of a card plugged in while the guest runs: from its MAC, never a start's nic<i>. */
export function nicDeviceOf(mac: string): string {
  return `nic-${mac.toLowerCase().replaceAll(":", "")}`;
}

/** What the card operations need of the supervisor. */
export interface NicHost {
  guest(id: string): SupervisedGuest | undefined;
  /** The agent's managed networks (null: none run here). */
  networks: Pick<Networks, "plug" | "unplug"> | null;
  /** Refuses a spec whose user-mode forwards this host does not allow. */
  assertForwards(spec: GuestSpec): void;
  /** Where user-mode forwards listen on the host (empty: every address). */
  forwardAddress: string | null;
  changed(guest: SupervisedGuest): void;
}

type LiveGuest = SupervisedGuest & { qmp: QmpClient; spec: GuestSpec };

/** A guest's managed cards as the networks plug them, each under its slot (which names its tap). */
export function managedCards(spec: GuestSpec, table: NicTable): NicToPlug[] {
  return spec.nics.flatMap((nic) => {
    if (nic.mode !== "managed") return [];
    const slot = table.nics.find((n) => n.mac === nic.mac.toLowerCase())?.slot;
    if (slot === undefined) throw new GuesthouseError("internal", `The card ${nic.mac} is missing from the guest's card table.`);
    return [{ index: slot, mac: nic.mac, network: nic.network, ...(nic.vlan !== undefined ? { vlan: nic.vlan } : {}), ...(nic.bandwidth ? { bandwidth: nic.bandwidth } : {}) }];
  });
}

export class GuestNics {
  constructor(private readonly host: NicHost) {}

  private live(id: string): LiveGuest {
    const guest = this.host.guest(id);
    const state = guest?.state ?? "stopped";
    if (!guest || (state !== "running" && state !== "paused")) {
      throw new GuesthouseError("conflict", `This guest is ${state}; network cards are plugged in and out only while it runs. Change its hardware instead.`);
    }
    if (!guest.qmp || !guest.spec) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest; force it off instead.");
    return guest as LiveGuest;
  }

  /** The device id QMP knows the guest's card `index` by (set_link). */
  deviceOf(guest: SupervisedGuest, index: number): string | null {
    const mac = guest.spec?.nics[index]?.mac.toLowerCase();
    return guest.nics.nics.find((n) => n.mac === mac)?.device ?? null;
  }

  /** Plugs a network card into a running guest; resolves with its status once QEMU has the device. */
  async plug(id: string, nic: NicSpec): Promise<GuestStatus> {
    const guest = this.live(id);
    return guest.diskOps.run(async () => {
      const spec = guest.spec;
      const mac = nic.mac.toLowerCase();
      if (spec.nics.some((n) => n.mac.toLowerCase() === mac)) throw new GuesthouseError("conflict", `This guest already has a card with the MAC address ${nic.mac}; give the new card another one.`);
      if (spec.nics.length >= LIMITS_DEVICES.nics) {
        throw new GuesthouseError("conflict", `This guest already has ${spec.nics.length} network cards, the most a guest can have. Unplug one first.`);
      }
      const next = parseOrThrow(guestSpecSchema, { ...spec, nics: [...spec.nics, nic] }, "The guest with this network card");
      this.host.assertForwards(next);
      if (nic.mode === "managed" && !this.host.networks) throw new GuesthouseError("conflict", "This agent runs no managed networks; put the card on user-mode networking.");
      const devices = await peripherals(guest.qmp);
      const device = nicDeviceOf(mac);
      const netdev = `net-${mac.replaceAll(":", "")}`;
      if (devices.has(device)) throw new GuesthouseError("conflict", `A card with the MAC address ${nic.mac} is still being unplugged from this guest; try again in a moment.`);
      let port: string | null = null;
      if (spec.machine === "q35") {
        const ports = hotplugPorts("q35");
        if (!ports.every((p) => devices.has(p))) {
          throw new GuesthouseError("conflict", "This guest started without hot-plug slots (an older agent started it). Restart it once to plug cards in while it runs.");
        }
        const taken = await takenPorts(guest);
        port = ports.find((p) => !taken.has(p)) ?? null;
        if (!port) throw new GuesthouseError("conflict", `All ${ports.length} hot-plug slots of this guest are taken by disks and cards plugged in while it runs. Unplug one, or add the card while the guest is stopped.`);
      }
      const slot = guest.nics.next;
      // Slots (the taps' names) are never reused within one QEMU run, whatever happens below.
      guest.nics.next = slot + 1;
      const entry: PluggedNic = { mac, device, netdev, port, slot, detaching: false };
      const table: NicTable = { ...guest.nics, nics: [...guest.nics.nics, entry] };
      const undo: Array<() => Promise<unknown>> = [];
      try {
        if (nic.mode === "managed") {
          const networks = this.host.networks!;
          const before = managedCards(spec, guest.nics);
          const plugged = await networks.plug({ id, name: spec.name }, managedCards(next, table));
          undo.push(() => (before.length ? networks.plug({ id, name: spec.name }, before) : networks.unplug(id)));
          guest.plugged = true;
          const mine = plugged.find((p) => p.mac === mac);
          if (!mine) throw new GuesthouseError("internal", `The network did not give the card ${nic.mac} a port.`);
          const fdname = `tap-${mac.replaceAll(":", "")}`;
          await addTap(guest.files.qmpFds, { tap: mine.tap, bridge: mine.bridge, fdname, netdev, ...(mine.vlan !== undefined ? { vlan: mine.vlan } : {}), ...(mine.bandwidth?.inMbit ? { inMbit: mine.bandwidth.inMbit } : {}) });
        } else {
          const forwards = nic.forwards.map((f) => ({ str: `${f.protocol}:${this.host.forwardAddress ?? ""}:${f.hostPort}-:${f.guestPort}` }));
          await guest.qmp.execute("netdev_add", { type: "user", id: netdev, ...(nic.isolated ? { restrict: true } : {}), ...(forwards.length ? { hostfwd: forwards } : {}) });
        }
        undo.push(() => guest.qmp.execute("netdev_del", { id: netdev }));
        await guest.qmp.execute("device_add", { driver: NIC_DEVICES[nic.model], id: device, netdev, mac, ...(port ? { bus: port } : {}) });
      } catch (err) {
        for (const step of undo.reverse()) await step().catch((e) => console.error(`agent: guest ${id}: undoing the card ${mac}:`, e));
        if (err instanceof QmpCommandError) throw new GuesthouseError("qmp-error", `QEMU could not plug the card ${nic.mac} in: ${err.desc}`, err.message);
        throw err;
      }
      guest.nics = table;
      guest.spec = next;
      await guest.saveNics();
      this.host.changed(guest);
      return guest.status();
    });
  }

  /**
   * Unplugs a card from a running guest: asks the guest to let go of the device and
   * waits (bounded) until it has, then removes its netdev (its tap goes with it) and its
   * port. A guest that does not let go in time keeps the card; should it let go later,
   * the agent finishes then.
   */
  async unplug(id: string, mac: string): Promise<GuestStatus> {
    const guest = this.live(id);
    return guest.diskOps.run(async () => {
      const wanted = mac.toLowerCase();
      const entry = guest.nics.nics.find((n) => n.mac === wanted);
      if (!entry || !guest.spec.nics.some((n) => n.mac.toLowerCase() === wanted)) throw new GuesthouseError("not-found", `The running guest has no card with the MAC address ${mac}.`);
      if (guest.spec.machine === "q35" && entry.port === null) {
        throw new GuesthouseError("conflict", "This card sits on the q35 machine's built-in PCIe bus, which cannot unplug devices (only cards plugged in while the guest runs can be). Stop the guest to remove it.");
      }
      const deleted = nextEvent(guest.qmp, (e) => e.event === "DEVICE_DELETED" && e.data?.device === entry.device, UNPLUG_TIMEOUT_MS);
      try {
        await guest.qmp.execute("device_del", { id: entry.device });
      } catch (err) {
        if (!(entry.detaching && err instanceof QmpCommandError && /already|in progress|pending/i.test(err.desc))) {
          deleted.cancel();
          throw err;
        }
      }
      if (!entry.detaching) {
        entry.detaching = true;
        await guest.saveNics();
      }
      if (!(await deleted.promise)) {
        if (!guest.qmp) throw new GuesthouseError("qmp-disconnected", "The connection to QEMU closed while the card was being unplugged.");
        throw new GuesthouseError("timeout", `The guest has not let go of the card ${mac} within ${UNPLUG_TIMEOUT_MS / 1000} s (its system may not handle unplugging, or may still be booting). The card stays until it does; try again, or stop the guest.`);
      }
      await this.finishUnplug(guest, entry.device);
      return guest.status();
    });
  }

  /**
   * Once QEMU reports a card's device gone: its netdev goes (and a tap with it), the
   * guest's ports are plugged again without it, and it leaves the running spec. Does
   * nothing for a device that is no card of the guest's (or one finished already).
   */
  async finishUnplug(guest: SupervisedGuest, device: string): Promise<void> {
    const entry = guest.nics.nics.find((n) => n.device === device);
    if (!entry || !guest.spec) return;
    const spec = guest.spec;
    const card = spec.nics.find((n) => n.mac.toLowerCase() === entry.mac);
    await guest.qmp?.execute("netdev_del", { id: entry.netdev }).catch((err) => console.error(`agent: guest ${guest.id}: removing ${entry.netdev}:`, err));
    const table: NicTable = { ...guest.nics, nics: guest.nics.nics.filter((n) => n !== entry) };
    const next: GuestSpec = { ...spec, nics: spec.nics.filter((n) => n.mac.toLowerCase() !== entry.mac) };
    const networks = this.host.networks;
    if (card?.mode === "managed" && networks) {
      const rest = managedCards(next, table);
      await (rest.length ? networks.plug({ id: guest.id, name: spec.name }, rest) : networks.unplug(guest.id)).catch((err) =>
        console.error(`agent: guest ${guest.id}: its ports without the card ${entry.mac}:`, err),
      );
    }
    guest.nics = table;
    guest.spec = next;
    await guest.saveNics();
    this.host.changed(guest);
  }

  /** After the agent restarts: unplugs the agent asked for that the guest finished while nobody listened. */
  async reconcile(guest: SupervisedGuest & { qmp: QmpClient }): Promise<void> {
    const pending = guest.nics.nics.filter((n) => n.detaching);
    if (pending.length === 0) return;
    const devices = await peripherals(guest.qmp);
    for (const entry of pending) {
      if (!devices.has(entry.device)) await guest.diskOps.run(() => this.finishUnplug(guest, entry.device));
    }
  }
}

/** The hot-plug ports disks and cards hold, by the agent's tables and by what QEMU lists behind each port (query-pci). */
async function takenPorts(guest: SupervisedGuest & { qmp: QmpClient }): Promise<Set<string>> {
  const taken = new Set<string>([...Object.values(guest.disks.disks).flatMap((d) => (d.port ? [d.port] : [])), ...guest.nics.nics.flatMap((n) => (n.port ? [n.port] : []))]);
  const buses = await guest.qmp.execute<PciBus[]>("query-pci");
  const visit = (devices: PciDevice[]) => {
    for (const d of devices) {
      const behind = d.pci_bridge?.devices ?? [];
      if (d.qdev_id && behind.length > 0) taken.add(d.qdev_id);
      visit(behind);
    }
  };
  for (const bus of buses) visit(bus.devices);
  return taken;
}

interface PciDevice {
  qdev_id?: string;
  pci_bridge?: { devices?: PciDevice[] };
}
interface PciBus {
  devices: PciDevice[];
}


/** Runs add-tap.py: the tap made (on its bridge, VLAN, shaped), handed to QEMU under `fdname` and made the netdev `netdev` (on the monitor that knows the name). */
function addTap(qmpSocket: string, plan: { tap: string; bridge: string; fdname: string; netdev: string; vlan?: number; inMbit?: number }): Promise<void> {
  return runPythonHelper(HELPER, [qmpSocket, JSON.stringify(plan)], [], {
    missing: "python3 is missing on this host: the agent needs it to make a card's tap while the guest runs. Install Debian's python3-minimal.",
    failed: (why) => `The card's tap ${plan.tap} could not be made and handed to QEMU: ${why}`,
  });
}

