import Link from "next/link";
import { formatBytes } from "@/server/domain/format";
import { keyboardLayoutOf } from "@/server/domain/keymaps";
import { HardwareEditor } from "@/components/hardware-editor";
import type { EditHardwareInput } from "@/server/domain/validation";
import { agentFor, definitionOf, loadGuestOr404 } from "@/server/web/guests";
import { isosFor } from "@/server/web/isos";
import { teamNetworks } from "@/server/web/networks";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function EditHardwarePage({ params }: { params: Promise<{ id: string }> }) {
  const user = await requireUser();
  const { id } = await params;
  const guest = await loadGuestOr404(user, id);
  const [info, isos, networks] = await Promise.all([agentFor(guest.host).host().catch(() => null), isosFor(user, guest.host, guest.teamId), teamNetworks(guest.teamId, guest.host.id)]);
  // The definition, plus what only editing needs: which disk is which, and the MACs.
  const { guesthouse: _version, name: _name, disks, nics, ...hardware } = definitionOf(guest);
  const initial: EditHardwareInput = {
    ...hardware,
    disks: guest.disks.map((d, i) => ({ id: d.id, bus: disks[i]!.bus, cache: disks[i]!.cache, readOnly: disks[i]!.readOnly })),
    nics: guest.nics.map((n, i) => ({ mac: n.mac, model: nics[i]!.model, network: nics[i]!.network ?? "user", ...(nics[i]!.vlan !== undefined ? { vlan: nics[i]!.vlan } : {}), ...(nics[i]!.bandwidth ? { bandwidth: nics[i]!.bandwidth } : {}), isolated: nics[i]!.isolated, forwards: nics[i]!.forwards })),
    keyboardLayout: keyboardLayoutOf(guest.keyboardLayout),
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
        diskLabels={guest.disks.map((d) => `${d.file} (${formatBytes(Number(d.sizeBytes))} ${d.format})`)}
        isos={(isos ?? []).map((i) => i.name)}
        forwardPorts={info?.forwards ?? null}
        networks={networks}
      />
    </div>
  );
}
