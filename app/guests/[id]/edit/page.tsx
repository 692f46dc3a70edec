import Link from "next/link";
import { HardwareEditor } from "@/components/hardware-editor";
import type { EditHardwareInput } from "@/server/domain/validation";
import { agentFor, loadGuestOr404, specOf } from "@/server/web/guests";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function EditHardwarePage({ params }: { params: Promise<{ id: string }> }) {
  const user = await requireUser();
  const { id } = await params;
  const guest = await loadGuestOr404(user, id);
  const spec = specOf(guest);
  const info = await agentFor(guest.host).host().catch(() => null);
  const initial: EditHardwareInput = {
    machine: spec.machine,
    firmware: spec.firmware,
    vcpus: spec.vcpus,
    sockets: spec.sockets,
    threads: spec.threads,
    memoryMiB: spec.memoryMiB,
    bootOrder: spec.bootOrder,
    display: spec.display,
    serial: spec.serial,
    rtc: spec.rtc,
    description: guest.description,
    tags: JSON.parse(guest.tags) as string[],
    // guest.disks and spec.disks are in the same order.
    disks: guest.disks.map((d, i) => ({ id: d.id, bus: spec.disks[i]!.bus, cache: spec.disks[i]!.cache, readOnly: spec.disks[i]!.readOnly })),
    cdroms: spec.cdroms,
    nics: spec.nics.map((n) => ({ mac: n.mac, model: n.model, forwards: n.forwards })),
  };
  return (
    <div className="mx-auto max-w-3xl space-y-4">
      <div className="flex items-center justify-between">
        <h1 className="text-2xl font-semibold">Hardware of {guest.name}</h1>
        <Link href={`/guests/${guest.id}`} className="text-sm text-indigo-700 hover:underline">
          ← Back to {guest.name}
        </Link>
      </div>
      <HardwareEditor
        guestId={guest.id}
        initial={initial}
        diskLabels={guest.disks.map((d) => `${d.sizeGiB} GiB ${d.format}`)}
        isos={(info?.isos ?? []).map((i) => i.name)}
      />
    </div>
  );
}
