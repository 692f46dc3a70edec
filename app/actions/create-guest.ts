"use server";

import { revalidatePath } from "next/cache";
import { GuesthouseError } from "@/server/domain/errors";
import { createGuestInput, parseOrThrow, type GuestDefinition } from "@/server/domain/validation";
import { authedAction } from "@/server/web/action";
import { makeGuest } from "@/server/web/guest-factory";
import { localHost } from "@/server/web/hosts";

/** Creates a guest from the new-guest form: one sparse qcow2 disk, one CD-ROM, one user-mode card. */
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
  if (input.boot === "cdrom" && !input.iso) throw new GuesthouseError("invalid-input", "To boot from CD-ROM, choose an ISO.");
  if (input.boot === "disk" && input.diskGiB === 0) throw new GuesthouseError("invalid-input", "To boot from disk, give the guest a disk.");

  const definition: GuestDefinition = {
    guesthouse: 1,
    name: input.name,
    machine: "q35",
    firmware: "bios",
    vcpus: input.vcpus,
    sockets: 1,
    threads: 1,
    memoryMiB: input.memoryMiB,
    bootOrder: input.boot === "cdrom" ? ["cdrom", "disk"] : ["disk", "cdrom"],
    display: "std",
    serial: true,
    rtc: "utc",
    description: "",
    tags: [],
    disks: input.diskGiB > 0 ? [{ sizeGiB: input.diskGiB, format: "qcow2", bus: input.diskBus, cache: "none", readOnly: false }] : [],
    cdroms: input.iso ? [{ iso: input.iso }] : [],
    nics: input.network === "user" ? [{ model: "virtio", isolated: false, forwards: [] }] : [],
  };
  const guest = await makeGuest(user, await localHost(), definition);
  revalidatePath("/");
  return guest;
});
