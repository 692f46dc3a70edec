/**
 * What can be done to disk images, ISOs, uploads and tasks, for a user: the operations
 * the disk pages' server actions run (app/actions/disks.ts wraps each with the session),
 * and that tests drive directly. Each checks the policy, validates its input and keeps
 * the database, the host and the quotas in step, undoing what it began when it fails.
 */
import { z } from "zod";
import type { SessionUser } from "../auth/sessions";
import { refreshPage } from "./refresh";
import { db } from "../db/client";
import { assertMayCreate, assertSameOwner, canCancelTask, canManageHost, taskWhere, type Action } from "../auth/policy";
import { GuesthouseError } from "../domain/errors";
import { newVolumeId } from "../domain/ids";
import { DEFAULT_POOL, DISK_BUSES, ISO_POOL, isGuestDiskFormat, NEW_DISK_FORMATS, type DiskBus } from "../domain/types";
import { diskFormat, imageFileName, isoName, parseOrThrow, parseSize, passphrase, poolName, snapshotName } from "../domain/validation";
import { assertNoClones, diskFacts, loadDisk, refOf, secretOf, type DiskRow } from "./disks";
import { publishIso, removeIso } from "./isos";
import { registerImage } from "./registration";
import { agentFor, baseChain, liveState, loadGuest, specOf } from "./guests";
import { recordEvent } from "./audit";
import { localHost } from "./hosts";
import { recordedTask, recordTask, WEB_TASK_PREFIX } from "./tasks";
import { cancelUploadTask, discardUpload } from "./uploads";
import { HOLD_MS, holdIn, releaseHold, withHold, withinQuota } from "./quotas";

export const createDiskInput = z.strictObject({
  pool: poolName,
  file: imageFileName,
  format: z.enum(NEW_DISK_FORMATS),
  size: z.string().max(40),
  encrypt: z.boolean(),
  passphrase: z.string().max(1024),
});

/** A new, empty, sparse image; optionally LUKS-encrypted qcow2. */
export async function createDisk(user: SessionUser, raw: unknown) {
  assertMayCreate(user, user.teamId);
  const input = parseOrThrow(createDiskInput, raw, "The new disk");
  const bytes = parseSize(input.size);
  const secret = input.encrypt ? parseOrThrow(passphrase, input.passphrase, "The passphrase") : undefined;
  const host = await localHost();
  await assertNameFree(host.id, input.pool, input.file);
  const volume = newVolumeId();
  // The row is written within the task: a web killed before it leaves the task running,
  // and its next start removes the file no row took (reconcileTasks).
  const target = { pool: input.pool, file: input.file };
  // A file of that name no row records (put there by the host's admin) is refused here, so
  // the clean-up after a restart can only ever meet a file this operation made.
  const existing = await agentFor(host)
    .image(target)
    .then(
      () => true,
      (err: unknown) => {
        if (err instanceof GuesthouseError && err.code === "not-found") return false;
        if (err instanceof GuesthouseError && err.code === "invalid-input") return true; // there, but not a usable image
        throw err;
      },
    );
  if (existing) throw new GuesthouseError("conflict", `There is already a file "${input.file}" in "${input.pool}". Choose another name.`);
  const scope = { teamId: user.teamId, userId: user.id };
  const title = `create ${input.pool}/${input.file} (${input.size} ${input.format}${secret ? ", encrypted" : ""})`;
  const disk = await withHold(scope, { diskBytes: bytes }, HOLD_MS.quick, (hold) => recordedTask(user, host.id, { kind: "create", title, makes: [target] }, async () => {
    const info = await agentFor(host).createImage({ ...target, format: input.format, bytes, volume, passphrase: secret });
    try {
      // The row takes the hold's place in the same transaction.
      return await withinQuota(scope, {}, (tx) => tx.disk.create({
        select: { id: true },
        data: {
          volume,
          pool: input.pool,
          file: input.file,
          format: input.format,
          encrypted: info.encrypted,
          sizeBytes: BigInt(info.virtualBytes),
          bus: "virtio",
          ownerId: user.id,
          teamId: user.teamId,
          hostId: host.id,
        },
      }), { release: hold });
    } catch (err) {
      // No row, no file: the image just made is removed again.
      await agentFor(host).deleteImage(target, secret ? volume : undefined).catch(() => {});
      throw err;
    }
  }));
  await recordEvent("disk-create", true, `created disk ${input.file} (${input.size}${secret ? ", encrypted" : ""})`, user, null).catch(() => {});
  refreshPage("/disks");
  return disk;
}

/**
 * Records an image file found in a storage folder as a disk of this user. Admins only:
 * a file without a row may be someone's disk being made (a clone, an upload) or one the
 * host's admin put there, so it is no one's to claim.
 */
export async function importImage(user: SessionUser, raw: unknown) {
  if (!canManageHost(user)) throw new GuesthouseError("forbidden", "Only admins import files from the storage folders; upload an image to make it your disk.");
  const ref = parseOrThrow(z.strictObject({ pool: poolName, file: imageFileName }), raw, "The image");
  const host = await localHost();
  await assertNameFree(host.id, ref.pool, ref.file);
  const disk = await registerImage(user, host, ref);
  await recordEvent("disk-import", true, `imported ${ref.pool}/${ref.file}`, user, null).catch(() => {});
  refreshPage("/disks");
  return disk;
}

export const convertInput = z.strictObject({ file: imageFileName, format: diskFormat });

/**
 * Converts into a new image beside the original (the original stays as it is). The
 * new disk is listed at once as "pending"; the task record makes it ready when the
 * conversion succeeds, or removes it when it fails or is cancelled.
 */
export async function convertDisk(user: SessionUser, diskId: string, raw: unknown) {
  const input = parseOrThrow(convertInput, raw, "The conversion");
  const disk = await readyDisk(user, diskId, "change");
  if (disk.encrypted) throw new GuesthouseError("invalid-input", "Encrypted disks cannot be converted: the copy would be written unencrypted.");
  await assertNotRunning(disk, "convert it");
  await assertNameFree(disk.hostId, disk.pool, input.file);
  // The pending row counts against the disk space quota at once; a hold stands for its task until the task's row exists.
  const scope = { teamId: user.teamId, userId: user.id };
  const { output, hold } = await withinQuota(scope, { diskBytes: Number(disk.sizeBytes), tasks: 1 }, async (tx) => ({
    hold: await holdIn(tx, scope, { tasks: 1 }, HOLD_MS.quick),
    output: await tx.disk.create({
      select: { id: true },
      data: {
        volume: newVolumeId(),
        pool: disk.pool,
        file: input.file,
        format: input.format,
        state: "pending",
        sizeBytes: disk.sizeBytes,
        bus: disk.bus,
        ownerId: user.id,
        teamId: user.teamId,
        hostId: disk.hostId,
      },
    }),
  }));
  try {
    const task = await agentFor(disk.host).convertImage(refOf(disk), { pool: disk.pool, file: input.file }, input.format);
    await recordTask(user.id, disk.hostId, task, { diskId: output.id, effect: { type: "ready-when-done", diskId: output.id }, teamId: user.teamId, release: hold });
    refreshPage("/disks");
    return { taskId: task.id, diskId: output.id };
  } catch (err) {
    await db.disk.delete({ where: { id: output.id } }).catch(() => {});
    await releaseHold(hold);
    throw err;
  }
}

export const resizeInput = z.strictObject({ size: z.string().max(40), shrink: z.boolean() });

/** Grows (or, confirmed, shrinks) a disk; live through QMP when its guest is running. */
export async function resizeDisk(user: SessionUser, diskId: string, raw: unknown) {
  const input = parseOrThrow(resizeInput, raw, "The new size");
  const disk = await readyDisk(user, diskId, "change");
  assertNoClones(disk, "resize it", user);
  const bytes = parseSize(input.size);
  // Growing adds to the disk space quota: held while the agent resizes, then the row says the new size.
  const grows = Math.max(0, bytes - Number(disk.sizeBytes));
  const scope = { teamId: disk.teamId, userId: disk.ownerId };
  await withHold(scope, { diskBytes: grows }, HOLD_MS.quick, async (hold) => {
    const title = `resize ${disk.pool}/${disk.file} to ${input.size}${disk.guest ? " (live if running)" : ""}`;
    const info = await recordedTask(user, disk.hostId, { kind: "resize", title, diskId: disk.id, teamId: disk.teamId }, () =>
      agentFor(disk.host).resizeImage(refOf(disk), bytes, input.shrink, secretOf(disk)),
    );
    // The new size takes the hold's place in one transaction.
    await withinQuota(scope, {}, (tx) => tx.disk.update({ where: { id: disk.id }, data: diskFacts(info) }), { release: hold });
  });
  await recordEvent("disk-resize", true, `resized ${disk.file} to ${input.size}`, user, disk.guest?.id ?? null).catch(() => {});
  refreshPage(`/disks/${disk.id}`);
  return null;
}

export const snapshotInput = z.strictObject({ op: z.enum(["create", "revert", "delete"]), name: snapshotName });

/** Internal qcow2 snapshots; of a running guest they include its memory. */
export async function snapshotDisk(user: SessionUser, diskId: string, raw: unknown) {
  const input = parseOrThrow(snapshotInput, raw, "The snapshot");
  const disk = await readyDisk(user, diskId, "change");
  if (input.op === "revert") assertNoClones(disk, "revert it", user);
  // A new snapshot is counted before it is taken, and uncounted if it fails; a deleted one once it is gone.
  const scope = { teamId: disk.teamId, userId: disk.ownerId };
  if (input.op === "create") await withinQuota(scope, { snapshots: 1 }, (tx) => tx.disk.update({ where: { id: disk.id }, data: { snapshotCount: { increment: 1 } } }));
  try {
    await recordedTask(user, disk.hostId, { kind: "snapshot", title: `${input.op} snapshot ${input.name} of ${disk.pool}/${disk.file}`, diskId: disk.id, teamId: disk.teamId }, () =>
      agentFor(disk.host).snapshot(refOf(disk), input.op, input.name, secretOf(disk)),
    );
  } catch (err) {
    if (input.op === "create") await countSnapshots(disk.id, -1);
    throw err;
  }
  if (input.op === "delete") await countSnapshots(disk.id, -1);
  await recordEvent("snapshot", true, `${input.op} snapshot ${input.name} of ${disk.file}`, user, disk.guest?.id ?? null).catch(() => {});
  refreshPage(`/disks/${disk.id}`);
  return null;
}

async function countSnapshots(diskId: string, by: number): Promise<void> {
  await db.disk.updateMany({ where: { id: diskId, snapshotCount: { gte: -by } }, data: { snapshotCount: { increment: by } } });
}

/** `qemu-img check`: is the image consistent? */
export async function checkDisk(user: SessionUser, diskId: string) {
  const disk = await readyDisk(user, diskId, "operate");
  return agentFor(disk.host).checkImage(refOf(disk));
}

export const attachInput = z.strictObject({ guestId: z.string().min(1).max(64), bus: z.enum(DISK_BUSES) });

/**
 * Attaches a disk to a guest: recorded for a stopped guest (used at its next start),
 * hot-plugged into a running one.
 */
export async function attachDisk(user: SessionUser, diskId: string, raw: unknown) {
  const input = parseOrThrow(attachInput, raw, "The attachment");
  const disk = await readyDisk(user, diskId, "change");
  if (disk.guest) throw new GuesthouseError("conflict", `${disk.file} is attached to ${disk.guest.name}; detach it first.`);
  if (!isGuestDiskFormat(disk.format)) {
    throw new GuesthouseError("invalid-input", `${disk.file} is a ${disk.format} image; guests use qcow2 and raw disks only. Convert it to qcow2 first (below), then attach the copy.`);
  }
  // A guest would write to it, under every linked clone made from it.
  assertNoClones(disk, "attach it to a guest", user);
  const guest = await loadGuest(user, input.guestId, "change");
  assertSameOwner(disk, guest);
  if (guest.hostId !== disk.hostId) throw new GuesthouseError("invalid-input", "The disk and the guest are on different hosts.");
  if (guest.isTemplate) throw new GuesthouseError("conflict", "A template's disks do not change; attach the disk to a guest made from it.");
  const position = guest.disks.length;
  // The guest with the disk must still be a valid guest (disk count, IDE slots, read-only rules): checked before anything is written.
  const withBases = await db.disk.findUniqueOrThrow({ where: { id: disk.id }, include: { base: baseChain } });
  const spec = specOf({ ...guest, disks: [...guest.disks, { ...withBases, bus: input.bus as DiskBus, position }] });
  const { state } = await liveState(guest);
  if (state !== "stopped") {
    if (state !== "running" && state !== "paused") throw new GuesthouseError("conflict", `${guest.name} is ${state}; wait until it runs or is stopped.`);
    await recordedTask(user, guest.hostId, { kind: "attach", title: `hot-plug ${disk.file} into ${guest.name}`, diskId: disk.id, teamId: guest.teamId }, () =>
      agentFor(guest.host).attachDisk(guest.id, spec.disks.at(-1)!),
    );
  }
  await db.disk.update({ where: { id: disk.id }, data: { guestId: guest.id, bus: input.bus, position } });
  await recordEvent("disk-attach", true, `attached ${disk.file} to ${guest.name}${state === "stopped" ? "" : " (hot-plugged)"}`, user, guest.id).catch(() => {});
  refreshPage(`/disks/${disk.id}`);
  refreshPage(`/guests/${guest.id}`);
  return null;
}

/** Detaches a disk from its guest: hot-unplugged if the guest runs. */
export async function detachDisk(user: SessionUser, diskId: string) {
  const disk = await readyDisk(user, diskId, "change");
  if (!disk.guest) return null;
  const guest = await loadGuest(user, disk.guest.id, "change");
  if (guest.isTemplate) throw new GuesthouseError("conflict", `${guest.name} is a template: its disks stay as they are (guests made from it may be based on them).`);
  const { state } = await liveState(guest);
  if (state !== "stopped") {
    if (state !== "running" && state !== "paused") throw new GuesthouseError("conflict", `${guest.name} is ${state}; wait until it runs or is stopped.`);
    await recordedTask(user, guest.hostId, { kind: "detach", title: `unplug ${disk.file} from ${guest.name}`, diskId: disk.id, teamId: guest.teamId }, () =>
      agentFor(guest.host).detachDisk(guest.id, disk.volume),
    );
  }
  await db.$transaction([
    db.disk.update({ where: { id: disk.id }, data: { guestId: null, position: 0 } }),
    // Close the gap so positions stay 0, 1, 2 …
    ...guest.disks
      .filter((d) => d.position > disk.position)
      .map((d) => db.disk.update({ where: { id: d.id }, data: { position: d.position - 1 } })),
  ]);
  await recordEvent("disk-detach", true, `detached ${disk.file} from ${guest.name}`, user, guest.id).catch(() => {});
  refreshPage(`/disks/${disk.id}`);
  refreshPage(`/guests/${guest.id}`);
  return null;
}

/**
 * Deletes a disk and its file. Refused while a guest uses it or linked clones are
 * based on it: the page names them, and the person detaches or deletes them first.
 */
export async function deleteDisk(user: SessionUser, diskId: string) {
  const disk = await loadDisk(user, diskId, "delete");
  if (disk.guest) throw new GuesthouseError("conflict", `${disk.file} is attached to ${disk.guest.name}; detach it first.`);
  assertNoClones(disk, "delete it", user);
  if (disk.state === "pending") throw new GuesthouseError("conflict", `${disk.file} is still being made; cancel its task instead.`);
  await recordedTask(user, disk.hostId, { kind: "delete", title: `delete ${disk.pool}/${disk.file}`, teamId: disk.teamId }, () => agentFor(disk.host).deleteImage(refOf(disk), secretOf(disk)));
  await db.disk.delete({ where: { id: disk.id } });
  await recordEvent("disk-delete", true, `deleted disk ${disk.file}`, user, null).catch(() => {});
  refreshPage("/disks");
  return null;
}

/**
 * Deletes an ISO image from the host's ISO folder: admins; a team's own ISO also its
 * uploader and the team's owners (server/web/isos.ts). Refused while a guest has it as a CD-ROM.
 */
export async function deleteIso(user: SessionUser, raw: unknown) {
  const name = parseOrThrow(isoName, raw, "The ISO name");
  await removeIso(user, await localHost(), name);
  refreshPage("/disks");
  return null;
}

/** Publishes a team's ISO to every team, or takes it back (admins). */
export async function setIsoPublished(user: SessionUser, raw: unknown, published: unknown) {
  const name = parseOrThrow(isoName, raw, "The ISO name");
  await publishIso(user, await localHost(), name, published === true);
  await recordEvent("iso-publish", true, `${published === true ? "published" : "unpublished"} ISO ${name}`, user, null, { params: { name, published: published === true } }).catch(() => {});
  refreshPage("/disks");
  return null;
}

const uploadPartInput = z.strictObject({ pool: z.union([poolName, z.literal(ISO_POOL)]), file: z.string().max(255) });

/** Removes an interrupted upload kept for resuming (its owner or an admin). */
export async function removeUploadPart(user: SessionUser, raw: unknown) {
  const { pool, file } = parseOrThrow(uploadPartInput, raw, "The interrupted upload");
  parseOrThrow(pool === ISO_POOL ? isoName : imageFileName, file, "The file name");
  const host = await localHost();
  await discardUpload(user, host, { pool, file });
  await recordEvent("upload-discard", true, `removed the interrupted upload ${pool}/${file}`, user, null).catch(() => {});
  refreshPage("/disks");
  return null;
}

/** Cancels a running task of this user (admins: anyone's). */
export async function cancelTask(user: SessionUser, taskId: string) {
  const task = await db.task.findFirst({
    where: { id: String(taskId).slice(0, 64), ...taskWhere(user) },
    include: { host: true },
  });
  if (!task) throw new GuesthouseError("not-found", "There is no such task, or it is not yours.");
  if (!canCancelTask(user, task)) throw new GuesthouseError("forbidden", "You may see this task, not cancel it (this needs the write scope).");
  if (task.state !== "running") return null;
  // An upload is relayed by the web, not run by the agent as a task of that id: stop it by its file.
  if (task.id.startsWith(WEB_TASK_PREFIX)) await cancelUploadTask(task);
  else await agentFor(task.host).cancelTask(task.id);
  refreshPage("/tasks");
  return null;
}

async function readyDisk(user: SessionUser, diskId: string, action: Action): Promise<DiskRow> {
  const disk = await loadDisk(user, diskId, action);
  if (disk.state !== "ready") throw new GuesthouseError("conflict", `${disk.file} is still being made; wait for its task to finish.`);
  return disk;
}

async function assertNotRunning(disk: DiskRow, doing: string): Promise<void> {
  if (!disk.guest) return;
  const { state } = await liveState({ id: disk.guest.id, host: disk.host });
  if (state !== "stopped") throw new GuesthouseError("conflict", `${disk.file} is in use by ${disk.guest.name} (${state}); stop the guest before you ${doing}.`);
}

async function assertNameFree(hostId: string, pool: string, file: string): Promise<void> {
  if (await db.disk.findFirst({ where: { hostId, pool, file }, select: { id: true } })) {
    throw new GuesthouseError("conflict", `There is already a disk named ${file} in ${pool === DEFAULT_POOL ? "the default folder" : pool}. Choose another name.`);
  }
}
