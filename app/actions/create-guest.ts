"use server";

import { randomBytes } from "node:crypto";
import { revalidatePath } from "next/cache";
import { db } from "@/server/db/client";
import { GuesthouseError } from "@/server/domain/errors";
import { createGuestInput, parseOrThrow } from "@/server/domain/validation";
import { authedAction } from "@/server/web/action";
import { agentFor, recordEvent } from "@/server/web/guests";
import { localHost } from "@/server/web/hosts";

function newVolumeId(): string {
  return randomBytes(12).toString("hex");
}

/** QEMU's locally administered prefix 52:54:00 and three random bytes. */
function newMac(): string {
  return ["52", "54", "00", ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

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

  let isoId: string | null = null;
  if (input.iso) {
    const info = await agent.host();
    const iso = info.isos.find((i) => i.name === input.iso);
    if (!iso) {
      throw new GuesthouseError("not-found", `The ISO "${input.iso}" is not in the host's image folder. Choose one from the list.`);
    }
    const row = await db.isoImage.upsert({
      where: { hostId_name: { hostId: host.id, name: iso.name } },
      create: { hostId: host.id, name: iso.name, sizeBytes: BigInt(iso.sizeBytes) },
      update: { sizeBytes: BigInt(iso.sizeBytes), seenAt: new Date() },
    });
    isoId = row.id;
  }

  const network =
    input.network === "user"
      ? await db.network.upsert({
          where: { teamId_name: { teamId: user.teamId, name: "user" } },
          create: { name: "user", mode: "user", ownerId: user.id, teamId: user.teamId, hostId: host.id },
          update: {},
        })
      : null;

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
        boot: input.boot,
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

/** Prisma's unique-constraint error (P2002) on a constraint that includes `field`. */
function isUniqueViolationOn(err: unknown, field: string): boolean {
  const e = err as { code?: string; meta?: { target?: unknown } };
  if (e?.code !== "P2002") return false;
  const target = e.meta?.target;
  return Array.isArray(target) ? target.includes(field) : typeof target === "string" ? target.includes(field) : true;
}
