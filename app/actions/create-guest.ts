"use server";

import { authedAction } from "@/server/web/action";
import { createGuest as create, definitionFromForm } from "@/server/web/guest-ops";

/** Creates a guest from the new-guest form: one sparse qcow2 disk, one CD-ROM, one user-mode card. */
export const createGuest = authedAction("create-guest", async (user, form: FormData) =>
  create(
    user,
    definitionFromForm({
      name: form.get("name"),
      vcpus: form.get("vcpus"),
      memoryMiB: form.get("memoryMiB"),
      diskGiB: form.get("diskGiB"),
      diskBus: form.get("diskBus") ?? "virtio",
      iso: form.get("iso") ?? "",
      network: form.get("network") ?? "user",
      boot: form.get("boot") ?? "cdrom",
    }),
  ),
);
