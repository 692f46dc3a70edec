/**
 * The one place an image file already in a storage folder becomes a disk (an upload that
 * just finished, or a file an admin imports). Refused: encrypted images (their passphrase
 * is not known to the host) and images based on another image (a backing file), which
 * would let the disk read an image that is not its owner's; only linked clones
 * Guesthouse makes itself have one. An image in a format guests do not use (vmdk, vdi,
 * vpc, vhdx) is converted to qcow2 first, as a task with progress: its row waits "pending"
 * under the new name and becomes ready when the copy is done.
 */
import type { ImageRef } from "../agent-client";
import { assertMayCreate } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { isUniqueViolationOn } from "../db/errors";
import { GuesthouseError } from "../domain/errors";
import { newVolumeId } from "../domain/ids";
import { DISK_FORMATS, FORMAT_EXTENSIONS, ISO_POOL, isDiskFormat, isGuestDiskFormat } from "../domain/types";
import { agentFor } from "./guests";
import { withinQuota } from "./quotas";
import { recordTask } from "./tasks";

export interface Registered {
  /** The disk's row: ready, or pending while its conversion runs. */
  id: string;
  /** The format it arrived in, when it is being converted to qcow2. */
  convertedFrom?: string;
  /** The conversion's task, to follow on the tasks page. */
  taskId?: string;
  /** The disk's file name (the converted copy's, when converted). */
  file: string;
}

export async function registerImage(
  user: SessionUser,
  host: { id: string; endpoint: string },
  ref: ImageRef,
  extra: { sha256?: string; removeAfterConversion?: boolean; hold?: string | null } = {},
): Promise<Registered> {
  if (ref.pool === ISO_POOL) throw new GuesthouseError("invalid-input", "ISO images are the host's, shared by everyone; they are not anyone's disk.");
  assertMayCreate(user, user.teamId);
  const agent = agentFor(host);
  const info = await agent.image(ref);
  if (info.encrypted) throw new GuesthouseError("invalid-input", `${ref.file} is encrypted, and its passphrase is not known here; it cannot be imported.`);
  if (info.backing.length > 0) {
    throw new GuesthouseError(
      "invalid-input",
      `${ref.file} is based on another image (${info.backing[0]}). Only self-contained images are taken: make one with "qemu-img convert -O qcow2 ${ref.file} <new name>" and use that.`,
    );
  }
  if (!isDiskFormat(info.format)) {
    throw new GuesthouseError("invalid-input", `${ref.file} is a ${info.format} image; the host takes ${DISK_FORMATS.join(", ")}.`);
  }
  const converting = !isGuestDiskFormat(info.format);
  const file = converting ? await freeName(host.id, ref.pool, ref.file) : ref.file;
  let row: { id: string };
  try {
    // Its virtual size is checked against the disk space quota now that it is known (an
    // upload's hold, for the bytes it sent, goes in the same transaction).
    row = await withinQuota({ teamId: user.teamId, userId: user.id }, { diskBytes: info.virtualBytes, snapshots: info.snapshots.length }, (tx) => tx.disk.create({
      select: { id: true },
      data: {
        volume: newVolumeId(),
        pool: ref.pool,
        file,
        format: converting ? "qcow2" : info.format,
        state: converting ? "pending" : "ready",
        sizeBytes: BigInt(info.virtualBytes),
        sha256: extra.sha256 ?? null,
        bus: "virtio",
        ownerId: user.id,
        snapshotCount: info.snapshots.length,
        teamId: user.teamId,
        hostId: host.id,
      },
    }), { release: extra.hold });
  } catch (err) {
    if (isUniqueViolationOn(err, "file")) throw new GuesthouseError("conflict", `${file} is already a disk here.`);
    throw err;
  }
  if (!converting) return { id: row.id, file };
  try {
    const task = await agent.convertImage({ ...ref, format: info.format }, { pool: ref.pool, file }, "qcow2");
    await recordTask(user.id, host.id, task, {
      diskId: row.id,
      teamId: user.teamId,
      effect: { type: "ready-when-done", diskId: row.id, ...(extra.removeAfterConversion ? { removeWhenDone: { pool: ref.pool, file: ref.file } } : {}) },
    });
    return { id: row.id, convertedFrom: info.format, taskId: task.id, file };
  } catch (err) {
    await db.disk.delete({ where: { id: row.id } }).catch(() => {});
    throw err;
  }
}

/** `<name>.qcow2`, or `<name>-2.qcow2` … when a disk of this host has the name already. */
async function freeName(hostId: string, pool: string, source: string): Promise<string> {
  const stem = source.replace(/\.[^.]*$/, "") || source;
  for (let n = 1; n < 100; n++) {
    const file = `${stem}${n === 1 ? "" : `-${n}`}.${FORMAT_EXTENSIONS.qcow2}`;
    if (!(await db.disk.findFirst({ where: { hostId, pool, file }, select: { id: true } }))) return file;
  }
  throw new GuesthouseError("conflict", `No free name is left for the qcow2 copy of ${source}; rename it and try again.`);
}
