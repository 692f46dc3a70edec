import { CreateGuestForm } from "@/components/create-guest-form";
import { LIMITS, GUEST_NAME_RULE } from "@/server/domain/validation";
import { agentFor } from "@/server/web/guests";
import { localHost } from "@/server/web/hosts";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function NewGuestPage() {
  await requireUser();
  const host = await localHost();
  const info = await agentFor(host).host().catch(() => null);
  return (
    <div className="mx-auto max-w-2xl space-y-4">
      <h1 className="text-2xl font-semibold">New guest</h1>
      {!info && (
        <p role="alert" className="rounded-md bg-red-50 p-3 text-sm text-red-800">
          The host agent is not reachable, so no ISO can be listed. Start it (see the README) and reload.
        </p>
      )}
      <CreateGuestForm isos={info?.isos ?? []} limits={LIMITS} nameRule={GUEST_NAME_RULE} />
    </div>
  );
}
