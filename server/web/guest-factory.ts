/**
 * Making a guest, whichever way it comes: the create form, an imported definition,
 * a clone or a template. One place checks the name, the ISOs and the forwarded ports,
 * makes the disks (new, copied or linked), writes the rows in one go, and removes
 * every disk it made if anything fails: no half-made guest is ever left behind.
 */
import { assertMayCreate, can, guestNameFor } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import type { Prisma } from "../db/generated/client";
import { isUniqueViolationOn } from "../db/errors";
import { GuesthouseError } from "../domain/errors";
import { newMac, newVolumeId } from "../domain/ids";
import { hostPortsOf, type NetworkForward } from "../domain/network-rules";
import { DEFAULT_POOL, FORMAT_EXTENSIONS, type DiskFormat, type PortForward } from "../domain/types";
import type { GuestDefinition } from "../domain/validation";
import { agentFor, bandwidthColumns } from "./guests";
import { recordEvent } from "./audit";
import { recordedTask } from "./tasks";
import { loadWebConfig } from "./config";
import { isoRowsFor } from "./isos";
import { HOLD_MS, withHold, withinQuota } from "./quotas";
import { nicNetworks } from "./networks";

/** Where a new guest's disk comes from: made empty, or cloned from an existing disk. */
export type DiskSource =
  | { kind: "new" }
  | { kind: "full" | "linked"; diskId: string; pool: string; file: string; format: DiskFormat; sizeBytes: bigint };

/** A new disk's file name: the guest's name and a piece of the volume id, so people know whose it is. */
export function newDiskFile(guestName: string, volume: string, format: DiskFormat): string {
  return `${guestName}-${volume.slice(0, 6)}.${FORMAT_EXTENSIONS[format]}`;
}

export async function makeGuest(
  user: SessionUser,
  host: { id: string; endpoint: string },
  def: GuestDefinition,
  sources: DiskSource[] = def.disks.map(() => ({ kind: "new" })),
  how = "created",
): Promise<{ id: string }> {
  assertMayCreate(user, user.teamId);
  if (await db.guest.findFirst({ where: { teamId: user.teamId, name: def.name }, select: { id: true } })) {
    throw new GuesthouseError("conflict", `Your team already has a guest named "${def.name}". Choose another name.`);
  }
  await assertPortsFree(user, host, null, def.nics.flatMap((n) => n.forwards));
  const isoIds = await isoRowsFor(host, def.cdroms.map((c) => c.iso), user.teamId);
  const networks = await nicNetworks({ teamId: user.teamId, ownerId: user.id, hostId: host.id }, def.nics.map((n) => n.network), def.nics.map((n) => n.vlan));

  // Every disk's name is chosen first, so the task row can name them before any is made: a
  // web killed half-way leaves the row, and its next start removes the disks no row took.
  const planned = def.disks.map((disk, i) => {
    const source = sources[i] ?? { kind: "new" as const };
    const volume = newVolumeId();
    // A new disk is made raw or qcow2, whatever a definition asks (an exported vmdk disk is
    // made as qcow2: the row says what the file is). A clone is always qcow2 (a linked one
    // must be: it sits on its base).
    const format: "qcow2" | "raw" = source.kind === "new" && disk.format === "raw" ? "raw" : "qcow2";
    // A clone stays in its source's storage folder (a linked one names its base relative to itself).
    const target = { pool: source.kind === "new" ? DEFAULT_POOL : source.pool, file: newDiskFile(def.name, volume, format) };
    return { disk, source, volume, format, target };
  });
  // The guest and its disks' sizes are held against the team's quotas while the disks are made.
  const diskBytes = planned.reduce((sum, p) => sum + (p.source.kind === "new" ? p.disk.sizeGiB * 2 ** 30 : Number(p.source.sizeBytes)), 0);
  return withHold({ teamId: user.teamId, userId: user.id }, { guests: 1, diskBytes }, HOLD_MS.long, (hold) =>
    recordedTask(user, host.id, { kind: "create", title: `${how} guest ${def.name}`, makes: planned.map((p) => p.target) }, () =>
      makeGuestDisksAndRows(user, host, def, planned, networks, isoIds, how, hold),
    ),
  );
}

async function makeGuestDisksAndRows(
  user: SessionUser,
  host: { id: string; endpoint: string },
  def: GuestDefinition,
  planned: Array<{ disk: GuestDefinition["disks"][number]; source: DiskSource; volume: string; format: "qcow2" | "raw"; target: { pool: string; file: string } }>,
  /** Each card's network row, in order. */
  networks: string[],
  isoIds: string[],
  how: string,
  hold: string | null,
): Promise<{ id: string }> {
  const agent = agentFor(host);
  const made: Array<{ pool: string; file: string }> = [];
  try {
    const disks: Prisma.DiskUncheckedCreateWithoutGuestInput[] = [];
    for (const [i, { disk, source, volume, format, target }] of planned.entries()) {
      const sizeBytes = source.kind === "new" ? BigInt(disk.sizeGiB) * 2n ** 30n : source.sizeBytes;
      try {
        if (source.kind === "new") await agent.createImage({ ...target, format, bytes: Number(sizeBytes), volume });
        else await agent.cloneImage({ pool: source.pool, file: source.file, format: source.format }, target, source.kind);
      } catch (err) {
        // A refusal means the agent made nothing: a file already under that name is not this
        // guest's to remove. An answer that never came may hide a disk it did make.
        const unheard = err instanceof GuesthouseError && (err.code === "timeout" || err.code === "agent-unreachable");
        if (unheard) made.push(target);
        throw err;
      }
      made.push(target);
      disks.push({
        volume,
        ...target,
        format,
        bus: disk.bus,
        cache: disk.cache,
        readOnly: disk.readOnly,
        sizeBytes,
        position: i,
        baseId: source.kind === "linked" ? source.diskId : null,
        ownerId: user.id,
        teamId: user.teamId,
        hostId: host.id,
      });
    }
    // The rows take the hold's place in one transaction: counted once, never twice or not at all.
    const guest = await withinQuota({ teamId: user.teamId, userId: user.id }, {}, (tx) => tx.guest.create({
      select: { id: true },
      data: {
        name: def.name,
        machine: def.machine,
        firmware: def.firmware,
        vcpus: def.vcpus,
        sockets: def.sockets,
        threads: def.threads,
        memoryMiB: def.memoryMiB,
        bootOrder: def.bootOrder.join(","),
        display: def.display,
        serial: def.serial,
        rtc: def.rtc,
        description: def.description,
        tags: JSON.stringify([...new Set(def.tags)]),
        ownerId: user.id,
        teamId: user.teamId,
        hostId: host.id,
        disks: { create: disks },
        cdroms: { create: isoIds.map((isoId, position) => ({ isoId, position })) },
        nics: {
          create: def.nics.map((n, position) => ({
            mac: newMac(),
            model: n.model,
            forwards: JSON.stringify(n.forwards),
            isolated: n.isolated,
            vlan: n.vlan ?? null,
            ...bandwidthColumns(n),
            position,
            networkId: networks[position]!,
          })),
        },
      },
    }), { release: hold });
    await recordEvent("create", true, `${how} guest ${def.name}`, user, guest.id).catch((err) =>
      console.error("make-guest: could not record the event", err),
    );
    return guest;
  } catch (err) {
    // Also after a timeout: the agent may have made a disk even if we did not hear back.
    for (const target of made) {
      await agent.deleteImage(target).catch((e: unknown) => console.error("make-guest: could not remove disk", target.file, e));
    }
    if (isUniqueViolationOn(err, "name")) {
      throw new GuesthouseError("conflict", `Your team already has a guest named "${def.name}". Choose another name.`);
    }
    throw err;
  }
}

/**
 * A guest's port forwards, before they are saved: each in the range its host forwards
 * (the agent refuses others at start too), never this dashboard's own port, and none a
 * port another guest of the host already forwards.
 */
export async function assertPortsFree(actor: SessionUser, host: { id: string; endpoint: string }, exceptGuestId: string | null, forwards: PortForward[]): Promise<void> {
  if (forwards.length === 0) return;
  const policy = (await agentFor(host).host()).forwards;
  const ownPort = loadWebConfig().port;
  for (const f of forwards) {
    if (f.hostPort === ownPort) {
      throw new GuesthouseError("invalid-input", `Host port ${f.hostPort} is this dashboard's own port; a guest cannot have it. Choose one from ${policy.firstPort}–${policy.lastPort}.`);
    }
    if (f.hostPort < policy.firstPort || f.hostPort > policy.lastPort) {
      throw new GuesthouseError("invalid-input", `Host port ${f.protocol} ${f.hostPort} is outside the ports this host forwards to guests (${policy.firstPort}–${policy.lastPort}). Choose one in that range.`);
    }
  }
  const others = await db.nic.findMany({
    where: { guest: { hostId: host.id, ...(exceptGuestId ? { id: { not: exceptGuestId } } : {}) }, forwards: { not: "[]" } },
    select: { forwards: true, guest: { select: { name: true, teamId: true, ownerId: true } } },
  });
  // The guest holding a port, named only to whom may see it.
  const taken = new Map<string, string>();
  for (const nic of others) {
    for (const f of JSON.parse(nic.forwards) as PortForward[]) taken.set(`${f.protocol}/${f.hostPort}`, guestNameFor(actor, nic.guest));
  }
  // Managed networks' forwards take host ports too.
  const networks = await db.network.findMany({ where: { hostId: host.id, forwards: { not: "[]" } }, select: { name: true, teamId: true, ownerId: true, forwards: true } });
  for (const network of networks) {
    for (const nf of JSON.parse(network.forwards) as NetworkForward[]) {
      const { first, last } = hostPortsOf(nf);
      for (let p = first; p <= last; p++) taken.set(`${nf.protocol}/${p}`, can(actor, "view", network) ? `the network ${network.name}` : "another team's network");
    }
  }
  for (const f of forwards) {
    const owner = taken.get(`${f.protocol}/${f.hostPort}`);
    if (owner) throw new GuesthouseError("conflict", `Host port ${f.protocol} ${f.hostPort} is already forwarded to ${owner}. Choose another.`);
  }
}
