import Link from "next/link";
import { ConsoleViewers } from "@/components/console-viewers";
import { GuestActions } from "@/components/guest-actions";
import { HaltNotice } from "@/components/halt-notice";
import { LiveRefresh } from "@/components/live-refresh";
import { PasteBox } from "@/components/paste-box";
import { ShareLinks } from "@/components/share-links";
import { VncConsole } from "@/components/vnc-console";
import { can } from "@/server/auth/policy";
import { listShares } from "@/server/console/shares";
import { db } from "@/server/db/client";
import { keyboardLayoutOf } from "@/server/domain/keymaps";
import { isHalted } from "@/server/domain/types";
import { agentFor, loadGuestOr404 } from "@/server/web/guests";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function ConsolePage({
  params,
  searchParams,
}: {
  params: Promise<{ id: string }>;
  searchParams: Promise<{ window?: string | string[] }>;
}) {
  const user = await requireUser();
  const { id } = await params;
  const guest = await loadGuestOr404(user, id, "watch");
  // "Own window": the screen and its toolbar only.
  const ownWindow = (await searchParams).window === "1";
  const canShare = can(user, "share", guest);
  const canOperate = can(user, "operate", guest);
  const [shares, status] = await Promise.all([
    canShare && !ownWindow ? listShares(db, guest.id) : [],
    agentFor(guest.host).guest(guest.id).catch(() => null),
  ]);
  // A guest QEMU has halted shows a frozen screen: say why, and offer the way out here.
  const halted = status !== null && isHalted(status.state);
  return (
    <div className="space-y-4">
      <LiveRefresh />
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 className="text-xl font-semibold">Console: {guest.name}</h1>
        {!ownWindow && (
          <div className="flex items-center gap-4 text-sm">
            {guest.serial && (
              <Link href={`/guests/${guest.id}/serial`} className="text-indigo-700 hover:underline">
                Serial terminal
              </Link>
            )}
            <Link href={`/guests/${guest.id}`} className="text-indigo-700 hover:underline">
              ← Back to {guest.name}
            </Link>
          </div>
        )}
      </div>
      {halted && (
        <div className="space-y-2">
          <HaltNotice status={status} />
          {canOperate && <GuestActions guestId={guest.id} guestName={guest.name} state={status.state} since={status.since} diskNames={[]} />}
        </div>
      )}
      <VncConsole source={{ kind: "guest", guestId: guest.id }} guestName={guest.name} popup={ownWindow} watchOnly={!canOperate} />
      {!ownWindow && (
        <div className="grid gap-4 md:grid-cols-2">
          <PasteBox guestId={guest.id} layout={keyboardLayoutOf(guest.keyboardLayout)} />
          <div className="space-y-4">
            <ConsoleViewers guestId={guest.id} />
            {canShare && <ShareLinks guestId={guest.id} shares={shares} />}
          </div>
        </div>
      )}
    </div>
  );
}
