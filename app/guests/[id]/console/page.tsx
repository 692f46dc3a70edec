import Link from "next/link";
import { notFound } from "next/navigation";
import { VncConsole } from "@/components/vnc-console";
import { GuesthouseError } from "@/server/domain/errors";
import { loadGuest, type GuestRow } from "@/server/web/guests";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function ConsolePage({ params }: { params: Promise<{ id: string }> }) {
  const user = await requireUser();
  const { id } = await params;
  let guest: GuestRow;
  try {
    guest = await loadGuest(user, id);
  } catch (err) {
    if (err instanceof GuesthouseError && err.code === "not-found") notFound();
    throw err;
  }
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
