import Link from "next/link";
import { SerialConsole } from "@/components/serial-console";
import { loadGuestOr404 } from "@/server/web/guests";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function SerialConsolePage({ params }: { params: Promise<{ id: string }> }) {
  const user = await requireUser();
  const { id } = await params;
  const guest = await loadGuestOr404(user, id);
  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 className="text-xl font-semibold">Serial console: {guest.name}</h1>
        <div className="flex items-center gap-4 text-sm">
          <Link href={`/guests/${guest.id}/console`} className="text-indigo-700 hover:underline">
            Screen
          </Link>
          <Link href={`/guests/${guest.id}`} className="text-indigo-700 hover:underline">
            ← Back to {guest.name}
          </Link>
        </div>
      </div>
      {guest.serial ? (
        <SerialConsole guestId={guest.id} guestName={guest.name} />
      ) : (
        <div className="card p-6 text-sm text-slate-600">
          {guest.name} has no serial port. Turn on &ldquo;Serial console&rdquo; in its{" "}
          <Link href={`/guests/${guest.id}/edit`} className="text-indigo-700 underline">
            hardware
          </Link>
          ; it applies at the next start. Earlier output, if any, is in the{" "}
          <a href={`/guests/${guest.id}/serial-log`} className="text-indigo-700 underline">
            serial log
          </a>
          .
        </div>
      )}
    </div>
  );
}
