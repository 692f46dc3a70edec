"use server";

import { revalidatePath } from "next/cache";
import { db } from "@/server/db/client";
import { isUniqueViolationOn } from "@/server/db/errors";
import { newMac, newVolumeId } from "@/server/domain/ids";
import { GuesthouseError } from "@/server/domain/errors";
import { createGuestInput, parseOrThrow } from "@/server/domain/validation";
import { authedAction } from "@/server/web/action";
import { agentFor, recordEvent } from "@/server/web/guests";
import { localHost } from "@/server/web/hosts";
import { isoRowsFor } from "@/server/web/isos";
import { userModeNetwork } from "@/server/web/networks";

/**
 * Creates a guest: checks the input, the ISO and the name, makes the disk with
 * qemu-img, then writes the rows in one transaction. If anything fails after the
 * disk exists, the disk is removed again: no half-made guest is left behind.
 */
export const createGuest = authedAction("create-guest", async (user, form: FormData) => {
  const input = parseOrThrow(
    createGuestInput,
    {
      name: form.get("name"),
      vcpus: form.get("vcpus"),
      memoryMiB: form.get("memoryMiB"),
      diskGiB: form.get("diskGiB"),
      diskBus: form.get("diskBus") ?? "virtio",
      iso: form.get("iso") ?? "",
      network: form.get("network") ?? "user",
      boot: form.get("boot") ?? "cdrom",
    },
    "The new guest",
  );
  const host = await localHost();
  const agent = agentFor(host);

  if (await db.guest.findFirst({ where: { teamId: user.teamId, name: input.name }, select: { id: true } })) {
    throw new GuesthouseError("conflict", `Your team already has a guest named "${input.name}". Choose another name.`);
  }
  if (input.boot === "cdrom" && !input.iso) throw new GuesthouseError("invalid-input", "To boot from CD-ROM, choose an ISO.");
  if (input.boot === "disk" && input.diskGiB === 0) throw new GuesthouseError("invalid-input", "To boot from disk, give the guest a disk.");

  const [isoId] = await isoRowsFor(host, input.iso ? [input.iso] : []);

  const network =
    input.network === "user" ? await userModeNetwork({ teamId: user.teamId, ownerId: user.id, hostId: host.id }) : null;

  const volume = input.diskGiB > 0 ? newVolumeId() : null;
  let guestId: string;
  try {
    if (volume) await agent.createVolume(volume, "qcow2", input.diskGiB);
    const guest = await db.guest.create({
      select: { id: true },
      data: {
        name: input.name,
        vcpus: input.vcpus,
        memoryMiB: input.memoryMiB,
        bootOrder: input.boot === "cdrom" ? "cdrom,disk" : "disk,cdrom",
        ownerId: user.id,
        teamId: user.teamId,
        hostId: host.id,
        disks: volume
          ? { create: [{ volume, format: "qcow2", bus: input.diskBus, sizeGiB: input.diskGiB, ownerId: user.id, teamId: user.teamId, hostId: host.id }] }
          : undefined,
        cdroms: isoId ? { create: [{ isoId }] } : undefined,
        nics: network ? { create: [{ mac: newMac(), model: "virtio", networkId: network.id }] } : undefined,
      },
    });
    guestId = guest.id;
  } catch (err) {
    // Also after a timeout: the agent may have made the disk even if we did not hear back.
    if (volume) await agent.deleteVolume(volume, "qcow2").catch((e) => console.error("create-guest: could not remove disk", volume, e));
    if (isUniqueViolationOn(err, "name")) {
      throw new GuesthouseError("conflict", `Your team already has a guest named "${input.name}". Choose another name.`);
    }
    throw err;
  }
  await recordEvent("create", true, `created guest ${input.name}`, user.id, guestId).catch((err) =>
    console.error("create-guest: could not record the event", err),
  );
  revalidatePath("/");
  return { id: guestId };
});

