import type { Metadata } from "next";
import { VncConsole } from "@/components/vnc-console";
import { findShare } from "@/server/console/shares";
import { db } from "@/server/db/client";

export const dynamic = "force-dynamic";

export const metadata: Metadata = {
  title: "Shared screen · Guesthouse",
  // A link's page is nobody's business but its holder's.
  robots: { index: false, follow: false },
  referrer: "no-referrer",
};

/**
 * A view-only link: the guest's screen, live, without logging in. Keyboard, mouse and
 * clipboard are dropped by the server, whatever the page sends. A revoked or expired
 * link shows why and nothing else.
 */
export default async function SharedScreenPage({
  params,
  searchParams,
}: {
  params: Promise<{ token: string }>;
  searchParams: Promise<{ window?: string | string[] }>;
}) {
  const { token } = await params;
  const found = await findShare(db, token);
  if (!found.ok) {
    const gone = found.reason === "expired" || found.reason === "revoked";
    return (
      <div className="card mx-auto max-w-lg space-y-2 p-6 text-center" data-testid="share-refused" data-reason={found.reason}>
        <h1 className="text-xl font-semibold">{gone ? `This link was ${found.reason}` : "This link does not exist"}</h1>
        <p className="text-sm text-slate-600">Ask whoever gave it to you for a new one.</p>
      </div>
    );
  }
  const guest = await db.guest.findUniqueOrThrow({ where: { id: found.share.guestId }, select: { name: true } });
  const ownWindow = (await searchParams).window === "1";
  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-baseline justify-between gap-2">
        <h1 className="text-xl font-semibold">Screen of {guest.name}</h1>
        <p className="text-sm text-slate-600">
          View only{found.share.label ? ` · ${found.share.label}` : ""} · this link works until{" "}
          <time dateTime={found.share.expiresAt.toISOString()}>{found.share.expiresAt.toUTCString()}</time>
        </p>
      </div>
      <VncConsole source={{ kind: "share", token }} guestName={guest.name} popup={ownWindow} />
    </div>
  );
}
