import Link from "next/link";
import { VncConsole } from "@/components/vnc-console";
import { loadGuestOr404 } from "@/server/web/guests";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function ConsolePage({ params }: { params: Promise<{ id: string }> }) {
  const user = await requireUser();
  const { id } = await params;
  const guest = await loadGuestOr404(user, id);
  return (
    <div className="space-y-3">
      <div className="flex items-center justify-between">
        <h1 className="text-xl font-semibold">Console: {guest.name}</h1>
        <Link href={`/guests/${guest.id}`} className="text-sm text-indigo-700 hover:underline">
          ← Back to {guest.name}
        </Link>
      </div>
      <VncConsole guestId={guest.id} />
    </div>
  );
}
