"use server";

import { revalidatePath } from "next/cache";
import { isUniqueViolationOn } from "@/server/db/errors";
import { GuesthouseError } from "@/server/domain/errors";
import { newMac } from "@/server/domain/ids";
import { editHardwareInput, parseOrThrow } from "@/server/domain/validation";
import { authedAction } from "@/server/web/action";
import { assertPortsFree } from "@/server/web/guest-factory";
import { loadGuest } from "@/server/web/guests";
import { withinQuota } from "@/server/web/quotas";
import { recordEvent } from "@/server/web/audit";
import { isoRowsFor } from "@/server/web/isos";
import { userModeNetwork } from "@/server/web/networks";

/**
 * Saves a guest's hardware. A stopped guest gets it at its next start; a running one
 * shows the difference as pending changes until then. Everything is checked first
 * (the schema's cross-field rules, the disks are this guest's, the ISOs exist, the
 * forwarded host ports are free on the host), then written in one transaction.
 */
export const editHardware = authedAction("edit-hardware", async (user, guestId: string, raw: unknown) => {
  const input = parseOrThrow(editHardwareInput, raw, "The hardware");
  const guest = await loadGuest(user, guestId, "change");
  if (guest.isTemplate) throw new GuesthouseError("conflict", `${guest.name} is a template; clone it to make a guest you can change.`);

  const own = new Set(guest.disks.map((d) => d.id));
  if (input.disks.length !== own.size || input.disks.some((d) => !own.has(d.id))) {
    throw new GuesthouseError("invalid-input", "The disk list does not match this guest's disks. Reload the page and try again.");
  }
  await assertPortsFree(user, guest.host, guest.id, input.nics.flatMap((n) => n.forwards));
  const isoIds = await isoRowsFor(guest.host, input.cdroms.map((c) => c.iso), guest.teamId);
  const network = await userModeNetwork({ teamId: guest.teamId, ownerId: guest.ownerId, hostId: guest.host.id });

  try {
    // A running guest's vCPUs and memory count against its team's quotas at once (its
    // next start takes them): growing them is checked like a start.
    const grows = guest.poweredAt
      ? { vcpus: Math.max(0, input.vcpus - guest.vcpus), memoryMiB: Math.max(0, input.memoryMiB - guest.memoryMiB) }
      : {};
    await withinQuota({ teamId: guest.teamId, userId: guest.ownerId }, grows, async (tx) => {
      await tx.guest.update({
        where: { id: guest.id },
        data: {
          machine: input.machine,
          firmware: input.firmware,
          vcpus: input.vcpus,
          sockets: input.sockets,
          threads: input.threads,
          memoryMiB: input.memoryMiB,
          bootOrder: input.bootOrder.join(","),
          display: input.display,
          serial: input.serial,
          rtc: input.rtc,
          description: input.description,
          tags: JSON.stringify([...new Set(input.tags)]),
          ...(input.keyboardLayout ? { keyboardLayout: input.keyboardLayout } : {}),
        },
      });
      for (const [position, d] of input.disks.entries()) {
        await tx.disk.update({ where: { id: d.id }, data: { bus: d.bus, cache: d.cache, readOnly: d.readOnly, position } });
      }
      await tx.cdrom.deleteMany({ where: { guestId: guest.id } });
      await tx.cdrom.createMany({ data: isoIds.map((isoId, position) => ({ guestId: guest.id, isoId, position })) });
      await tx.nic.deleteMany({ where: { guestId: guest.id } });
      await tx.nic.createMany({
        data: input.nics.map((n, position) => ({
          guestId: guest.id,
          mac: n.mac ?? newMac(),
          model: n.model,
          forwards: JSON.stringify(n.forwards),
          isolated: n.isolated,
          position,
          networkId: network.id,
        })),
      });
    });
  } catch (err) {
    if (isUniqueViolationOn(err, "mac")) {
      throw new GuesthouseError("conflict", "Another guest already uses one of these MAC addresses. Choose another.");
    }
    throw err;
  }
  await recordEvent("edit", true, `edited the hardware of ${guest.name}`, user, guest.id).catch(() => {});
  revalidatePath(`/guests/${guest.id}`);
  return null;
});

