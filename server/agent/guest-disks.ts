/**
 * Disk operations on a running guest, through QMP, one at a time per guest: plugging a
 * disk in (hot-plug) and out, growing one, and internal snapshots with the guest's
 * memory. The supervisor owns the guests; this module changes their disks and the
 * disk table that says how QEMU names each one.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import { GuesthouseError } from "../domain/errors";
import { qemuLives, type DiskFormat, type DiskSpec, type GuestSpec, type GuestStatus } from "../domain/types";
import { guestSpecSchema, parseOrThrow } from "../domain/validation";
import { assertHotpluggable, diskId, FdSets, hotplugCommands, hotplugPorts, SCSI_CONTROLLER, secretPath, type QemuHostLayout } from "../qemu/args";
import { nextEvent, peripherals, QmpCommandError, type QmpClient, type QmpEvent } from "../qemu/qmp";
import { handOver } from "./fd-passing";
import type { PluggedDisk, SupervisedGuest } from "./guest-state";

/** How long a guest has to let go of an unplugged disk before the agent says so. */
const UNPLUG_TIMEOUT_MS = 10_000;
/** A snapshot with memory writes all of the guest's RAM; this bounds the wait for it. */
const SNAPSHOT_TIMEOUT_MS = 10 * 60_000;

/** What the disk operations need of the supervisor. */
export interface DiskHost {
  /** The supervised guest with this id, if any. */
  guest(id: string): SupervisedGuest | undefined;
  /** The guest whose QEMU has this image open, if any. */
  userOf(pool: string, file: string): { guestId: string; volume: string } | null;
  /** Refuses a disk QEMU must not open (missing, outside its folder, naming other files). */
  mustBeImage(pool: string, file: string, what: string, format: DiskFormat | null): Promise<void>;
  /** Where things are for this guest's QEMU. */
  layout(id: string): QemuHostLayout;
  /** The guest's status changed: tell whoever follows the agent's events. */
  changed(guest: SupervisedGuest): void;
}

type LiveGuest = SupervisedGuest & { qmp: QmpClient; spec: GuestSpec };

export class GuestDisks {
  constructor(private readonly host: DiskHost) {}

  /** A guest whose disks can change now (running or paused), with its QMP connection. */
  private live(id: string): LiveGuest {
    const guest = this.host.guest(id);
    const state = guest?.state ?? "stopped";
    if (!guest || (state !== "running" && state !== "paused")) {
      throw new GuesthouseError("conflict", `This guest is ${state}; disks change live only while it runs or is paused. Change its hardware instead.`);
    }
    if (!guest.qmp || !guest.spec) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest; force it off instead.");
    return guest as LiveGuest;
  }

  /** How QEMU names one of a running guest's disks. */
  private pluggedOf(guest: SupervisedGuest, volume: string): PluggedDisk {
    const plugged = Object.hasOwn(guest.disks.disks, volume) ? guest.disks.disks[volume] : undefined;
    if (!plugged) throw new GuesthouseError("not-found", "This disk is not attached to the running guest.");
    return plugged;
  }

  /** Grows a disk of a running guest (QMP block_resize); the guest sees the new size at once. */
  async resize(id: string, volume: string, bytes: number): Promise<void> {
    const guest = this.host.guest(id);
    if (!guest || !qemuLives(guest.state)) throw new GuesthouseError("conflict", "This guest is not running.");
    if (!guest.qmp) throw new GuesthouseError("qmp-disconnected", "The agent has lost QMP to this guest.");
    const qmp = guest.qmp;
    await guest.diskOps.run(async () => {
      const plugged = this.pluggedOf(guest, volume);
      const target = plugged.opened === "drive" ? { device: plugged.id } : { "node-name": plugged.id };
      await qmp.execute("block_resize", { ...target, size: bytes });
    });
  }

  /**
   * Internal snapshots of a running (or paused) guest with its memory, through QMP's
   * snapshot jobs: every writable disk gets the snapshot, the first one also the
   * memory. Reverting brings back disks and memory together, so the guest goes on
   * from the moment of the snapshot. To take or revert to one, every writable disk
   * must be qcow2: a snapshot that left one out would bring back the memory but not
   * that disk's contents. Deleting takes the snapshot out of whichever disks have it.
   */
  async snapshot(id: string, op: "create" | "revert" | "delete", name: string): Promise<void> {
    const guest = this.live(id);
    await guest.diskOps.run(async () => {
      const writable = guest.spec.disks.filter((d) => !d.readOnly && (op !== "delete" || d.format === "qcow2"));
      const unable = writable.filter((d) => d.format !== "qcow2");
      if (unable.length > 0) {
        const list = unable.map((d) => `${d.file} (${d.format})`).join(", ");
        throw new GuesthouseError(
          "invalid-input",
          `A snapshot of a running guest covers all its writable disks, and only qcow2 disks take snapshots; ${list} cannot. Convert ${unable.length > 1 ? "them" : "it"} to qcow2 or make ${unable.length > 1 ? "them" : "it"} read-only, or stop the guest and snapshot single images.`,
        );
      }
      if (writable.length === 0) throw new GuesthouseError("invalid-input", "This guest has no writable disk to keep a snapshot in.");
      const nodes = await this.nodeNames(guest, writable);
      const command = { create: "snapshot-save", revert: "snapshot-load", delete: "snapshot-delete" }[op];
      const args = op === "delete" ? { tag: name, devices: nodes } : { tag: name, vmstate: nodes[0], devices: nodes };
      const doing = { create: `take the snapshot "${name}"`, revert: `revert to the snapshot "${name}"`, delete: `delete the snapshot "${name}"` }[op];
      await this.runJob(guest, command, args, doing, SNAPSHOT_TIMEOUT_MS);
    });
  }

  /** The block node names of disks: their own for disks plugged in live, QEMU's automatic ones for -drive disks. */
  private async nodeNames(guest: SupervisedGuest & { qmp: QmpClient }, disks: DiskSpec[]): Promise<string[]> {
    const table = disks.map((d) => this.pluggedOf(guest, d.volume));
    if (table.every((p) => p.opened === "node")) return table.map((p) => p.id);
    const blocks = await guest.qmp.execute<Array<{ device: string; inserted?: { "node-name"?: string } }>>("query-block");
    return table.map((p) => {
      if (p.opened === "node") return p.id;
      const node = blocks.find((b) => b.device === p.id)?.inserted?.["node-name"];
      if (!node) throw new GuesthouseError("internal", `QEMU does not list the drive ${p.id} of this guest.`);
      return node;
    });
  }

  /**
   * Runs one QMP job to its end: starts it, waits until it has concluded (its event,
   * with query-jobs as the word that counts), dismisses it, and turns its error into
   * plain words. QEMU 7.2 runs snapshot jobs in its main loop, so the command's own
   * reply can come only once the job is done: it gets the job's whole time.
   */
  private async runJob(guest: SupervisedGuest & { qmp: QmpClient }, command: string, args: Record<string, unknown>, doing: string, timeoutMs: number): Promise<void> {
    const qmp = guest.qmp;
    const jobId = `gh-${command}-${Date.now().toString(36)}`;
    const deadline = Date.now() + timeoutMs;
    let wake = () => {};
    const onEvent = (event: QmpEvent) => {
      if (event.event === "JOB_STATUS_CHANGE" && event.data?.id === jobId) wake();
    };
    qmp.on("event", onEvent);
    try {
      await qmp.execute(command, { "job-id": jobId, ...args }, timeoutMs);
      for (;;) {
        const jobs = await qmp.execute<Array<{ id: string; status: string; error?: string }>>("query-jobs", undefined, Math.max(1000, deadline - Date.now()));
        const job = jobs.find((j) => j.id === jobId);
        if (!job) throw new GuesthouseError("internal", `QEMU lost track of its ${command} job.`);
        if (job.status === "concluded") {
          await qmp.execute("job-dismiss", { id: jobId });
          if (job.error) throw new GuesthouseError("qmp-error", `QEMU could not ${doing}: ${job.error.replace(/\.$/, "")}.`, `${command} job ${jobId}`);
          return;
        }
        if (Date.now() > deadline) {
          throw new GuesthouseError("timeout", `QEMU has not finished trying to ${doing} after ${Math.round(timeoutMs / 1000)} s; it goes on in the background. Look at the image's snapshots later.`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 250);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      qmp.off("event", onEvent);
    }
  }

  /**
   * Plugs a disk into a running guest: the descriptors of its image and base images
   * (opened by the agent, handed over on the guest's second QMP monitor: QEMU opens no
   * file by name), its passphrase's secret (encrypted disks, as data over QMP), the
   * image's block nodes, then the device, on a free hot-plug root port (q35) or the
   * PCI bus (pc), or on the guest's SCSI controller. What was added is taken away
   * again if a later step fails. The running spec gains the disk, so the image
   * counts as in use and the web sees it among the guest's disks.
   */
  async attach(id: string, disk: DiskSpec): Promise<GuestStatus> {
    const guest = this.live(id);
    return guest.diskOps.run(async () => {
      const spec = guest.spec;
      if (spec.disks.some((d) => d.volume === disk.volume)) throw new GuesthouseError("conflict", "This disk is already attached to the guest.");
      assertHotpluggable(disk);
      const user = this.host.userOf(disk.pool, disk.file);
      if (user) {
        throw new GuesthouseError(
          "conflict",
          user.guestId === id ? `${disk.file} is already attached to this guest.` : `${disk.file} is attached to another running guest; detach it there first.`,
        );
      }
      const next = parseOrThrow(guestSpecSchema, { ...spec, disks: [...spec.disks, disk] }, "The guest with this disk");
      if (guest.disks.nextFdSet === undefined) {
        throw new GuesthouseError("conflict", "This guest's QEMU was started by an older agent, which gave it no way to receive files. Restart it once to plug disks in while it runs.");
      }
      const layout = this.host.layout(id);
      const devices = await peripherals(guest.qmp);
      let port: string | null = null;
      if (disk.bus === "scsi" && !devices.has(SCSI_CONTROLLER)) {
        throw new GuesthouseError("invalid-input", "This guest started without a SCSI controller, so a SCSI disk cannot be plugged in now. Attach the disk on virtio, or add it while the guest is stopped.");
      }
      if (disk.bus === "virtio" && spec.machine === "q35") {
        const ports = hotplugPorts("q35");
        if (!ports.every((p) => devices.has(p))) {
          throw new GuesthouseError("conflict", "This guest started without hot-plug slots (an older agent started it). Restart it once to plug disks in while it runs.");
        }
        // Shared with network cards plugged in live (server/agent/guest-nics.ts).
        const taken = new Set([...Object.values(guest.disks.disks).map((d) => d.port), ...guest.nics.nics.map((n) => n.port)]);
        port = ports.find((p) => !taken.has(p)) ?? null;
        if (!port) {
          throw new GuesthouseError("conflict", `All ${ports.length} hot-plug slots of this guest are taken. Detach a disk plugged in while it runs, or add the disk while the guest is stopped.`);
        }
      }
      // Checked before QEMU is asked, so a missing file is named in the agent's words.
      await this.host.mustBeImage(disk.pool, disk.file, `disk ${disk.pool}/${disk.file}`, disk.format);
      for (const base of disk.backing) await this.host.mustBeImage(base.pool, base.file, `base image ${base.pool}/${base.file} of ${disk.file}`, base.format);
      if (disk.encrypted) await mustHaveSecret(secretPath(layout, disk.volume), disk);

      // Ids are never reused within one QEMU run: a device the guest has not let go of keeps its name.
      let index = guest.disks.next;
      while (devices.has(diskId(index))) index++;
      const name = diskId(index);
      const files = new FdSets(guest.disks.nextFdSet);
      const passphrase = disk.encrypted ? await fsp.readFile(secretPath(layout, disk.volume)) : null;
      const commands = hotplugCommands(disk, layout, name, port, files, passphrase);
      // Sets are never reused within one QEMU run, whatever happens below.
      guest.disks.nextFdSet = files.next;
      const undo: Array<() => Promise<unknown>> = [];
      try {
        undo.push(() => removeFdSets(guest.qmp, files.sets));
        await handOver(guest.files.qmpFds, files.descriptors());
        if (commands.secret) {
          await guest.qmp.execute("object-add", commands.secret);
          undo.push(() => guest.qmp.execute("object-del", { id: commands.secret!.id }));
        }
        await guest.qmp.execute("blockdev-add", commands.blockdev);
        undo.push(() => guest.qmp.execute("blockdev-del", { "node-name": name }));
        await guest.qmp.execute("device_add", commands.device);
      } catch (err) {
        for (const step of undo.reverse()) await step().catch(() => {});
        throw plugError(err, disk);
      }
      guest.disks.next = index + 1;
      guest.disks.disks[disk.volume] = { id: name, opened: "node", device: name, port, detaching: false, fdSets: files.sets };
      guest.spec = next;
      await guest.saveDisks();
      this.host.changed(guest);
      return guest.status();
    });
  }

  /**
   * Unplugs a disk from a running guest: asks the guest to let go of the device and
   * waits (bounded) until it has, then closes the image. A guest that does not let go
   * in time keeps the disk; should it let go later, the agent finishes then.
   */
  async detach(id: string, volume: string): Promise<GuestStatus> {
    const guest = this.live(id);
    return guest.diskOps.run(async () => {
      const disk = guest.spec.disks.find((d) => d.volume === volume);
      const plugged = disk ? guest.disks.disks[volume] : undefined;
      if (!disk || !plugged) throw new GuesthouseError("not-found", "This disk is not attached to the running guest.");
      if (disk.bus === "ide") throw new GuesthouseError("invalid-input", "IDE disks cannot be unplugged from a running guest. Stop the guest to remove it.");
      if (!plugged.device) throw new GuesthouseError("conflict", "This disk's device has no name QEMU could unplug it by (an older agent started the guest). Stop the guest to remove it.");
      if (disk.bus === "virtio" && guest.spec.machine === "q35" && plugged.port === null) {
        throw new GuesthouseError(
          "conflict",
          "This disk sits on the q35 machine's built-in PCIe bus, which cannot unplug devices (only disks plugged in while the guest runs can be). Stop the guest to remove it.",
        );
      }
      const device = plugged.device;
      const deleted = nextEvent(guest.qmp, (e) => e.event === "DEVICE_DELETED" && e.data?.device === device, UNPLUG_TIMEOUT_MS);
      try {
        await guest.qmp.execute("device_del", { id: device });
      } catch (err) {
        // A second request while the first is pending: keep waiting for the guest.
        if (!(plugged.detaching && err instanceof QmpCommandError && /already|in progress|pending/i.test(err.desc))) {
          deleted.cancel();
          throw err;
        }
      }
      if (!plugged.detaching) {
        plugged.detaching = true;
        await guest.saveDisks();
      }
      if (!(await deleted.promise)) {
        if (!guest.qmp) throw new GuesthouseError("qmp-disconnected", "The connection to QEMU closed while the disk was being unplugged.");
        throw new GuesthouseError(
          "timeout",
          `The guest has not let go of ${disk.file} within ${UNPLUG_TIMEOUT_MS / 1000} s (its system may not handle unplugging, may still be booting, or may be using the disk). The disk stays attached until it does; try again, or stop the guest.`,
        );
      }
      await this.finishUnplug(guest, device);
      return guest.status();
    });
  }

  /**
   * Once QEMU reports a disk's device gone: closes what the agent opened (the node
   * of a disk plugged in live; QEMU closes -drive disks itself) and the secret, and
   * takes the disk out of the running spec. Does nothing for a device it finished already.
   */
  async finishUnplug(guest: SupervisedGuest, device: string): Promise<void> {
    const volume = Object.keys(guest.disks.disks).find((v) => guest.disks.disks[v]!.device === device);
    if (volume === undefined || !guest.spec) return;
    const plugged = guest.disks.disks[volume]!;
    const disk = guest.spec.disks.find((d) => d.volume === volume);
    const qmp = guest.qmp;
    if (qmp && plugged.opened === "node") {
      await qmp.execute("blockdev-del", { "node-name": plugged.id }).catch((err) => console.error(`agent: guest ${guest.id}: closing ${plugged.id}:`, err));
    }
    if (qmp && disk?.encrypted) {
      await qmp.execute("object-del", { id: `${plugged.id}-secret` }).catch((err) => console.error(`agent: guest ${guest.id}: removing ${plugged.id}'s secret:`, err));
    }
    // QEMU closed the images with their nodes; its copies of the descriptors go too, but
    // for a base image another of its disks still sits on.
    if (qmp && plugged.fdSets) {
      const stillUsed = new Set(Object.entries(guest.disks.disks).flatMap(([v, d]) => (v === volume ? [] : (d.fdSets ?? []))));
      await removeFdSets(qmp, plugged.fdSets.filter((set) => !stillUsed.has(set))).catch((err) =>
        console.error(`agent: guest ${guest.id}: removing ${plugged.id}'s descriptors:`, err),
      );
    }
    delete guest.disks.disks[volume];
    guest.spec = { ...guest.spec, disks: guest.spec.disks.filter((d) => d.volume !== volume) };
    await guest.saveDisks();
    this.host.changed(guest);
  }



  /**
   * After the agent restarts: unplugs the agent asked for that the guest finished
   * while nobody listened.
   */
  async reconcile(guest: SupervisedGuest & { qmp: QmpClient }): Promise<void> {
    const pending = Object.values(guest.disks.disks).filter((d) => d.detaching && d.device);
    if (pending.length === 0) return;
    const devices = await peripherals(guest.qmp);
    for (const plugged of pending) {
      if (!devices.has(plugged.device!)) await guest.diskOps.run(() => this.finishUnplug(guest, plugged.device!));
    }
  }
}

/** Takes fd sets out of QEMU (remove-fd closes the descriptors it holds in them); a set already gone is fine. */
async function removeFdSets(qmp: QmpClient, sets: number[]): Promise<void> {
  for (const set of sets) {
    await qmp.execute("remove-fd", { "fdset-id": set }).catch((err) => {
      if (!(err instanceof QmpCommandError && /not found|does not exist/i.test(err.desc))) throw err;
    });
  }
}

/** An encrypted disk's passphrase file, which only this host has: without it the image cannot be opened. */
export async function mustHaveSecret(file: string, disk: DiskSpec): Promise<void> {
  try {
    await fsp.access(file, fs.constants.R_OK);
  } catch {
    throw new GuesthouseError(
      "not-found",
      `The passphrase of the encrypted disk ${disk.file} is missing from this host's secrets folder, so the disk cannot be opened. Restore its .key file from a backup, or detach the disk.`,
      file,
    );
  }
}

/** QEMU's refusal to plug a disk in, in words that say what to do (read from QEMU's own description, not our message). */
function plugError(err: unknown, disk: DiskSpec): unknown {
  if (!(err instanceof QmpCommandError)) return err;
  if (/Failed to get "\w+" lock|another process using/i.test(err.desc)) {
    return new GuesthouseError("conflict", `${disk.file} is open in another program (another QEMU or qemu-img); it cannot be attached meanwhile.`, err.message);
  }
  if (/not in .* format|image is not|Invalid|magic/i.test(err.desc) && !/secret|key|passphrase|decrypt/i.test(err.desc)) {
    return new GuesthouseError("invalid-input", `QEMU cannot open ${disk.file} as ${disk.format}: ${err.desc}`, err.message);
  }
  return new GuesthouseError("qmp-error", `QEMU could not plug ${disk.file} in: ${err.desc}`, err.message);
}

