"use server";

/** The disk pages' server actions: each runs its operation (server/web/disk-ops.ts) as the session's user. */
import * as ops from "@/server/web/disk-ops";
import { authedAction } from "@/server/web/action";

export const createDisk = authedAction("create-disk", ops.createDisk);
export const importImage = authedAction("import-image", ops.importImage);
export const convertDisk = authedAction("convert-disk", ops.convertDisk);
export const resizeDisk = authedAction("resize-disk", ops.resizeDisk);
export const snapshotDisk = authedAction("snapshot-disk", ops.snapshotDisk);
export const checkDisk = authedAction("check-disk", ops.checkDisk);
export const attachDisk = authedAction("attach-disk", ops.attachDisk);
export const detachDisk = authedAction("detach-disk", ops.detachDisk);
export const deleteDisk = authedAction("delete-disk", ops.deleteDisk);
export const deleteIso = authedAction("delete-iso", ops.deleteIso);
export const setIsoPublished = authedAction("publish-iso", ops.setIsoPublished);
export const removeUploadPart = authedAction("remove-upload-part", ops.removeUploadPart);
export const cancelTask = authedAction("cancel-task", ops.cancelTask);
