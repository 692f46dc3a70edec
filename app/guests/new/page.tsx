import Link from "next/link";
import { CreateGuestForm } from "@/components/create-guest-form";
import { ImportForm } from "@/components/import-form";
import { ownedWhere } from "@/server/auth/policy";
import { db } from "@/server/db/client";
import { LIMITS, GUEST_NAME_RULE } from "@/server/domain/validation";
import { isosFor } from "@/server/web/isos";
import { localHost } from "@/server/web/hosts";
import { teamNetworkNames } from "@/server/web/networks";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function NewGuestPage() {
  const user = await requireUser();
  const host = await localHost();
  const templates = await db.guest.findMany({
    where: { isTemplate: true, ...ownedWhere(user, "view") },
    orderBy: { name: "asc" },
    select: { id: true, name: true, vcpus: true, memoryMiB: true, description: true },
  });
  const [info, networks] = await Promise.all([isosFor(user, host, user.teamId), teamNetworkNames(user.teamId, host.id)]);
  return (
    <div className="mx-auto max-w-2xl space-y-4">
      <h1 className="text-2xl font-semibold">New guest</h1>
      {!info && (
        <p role="alert" className="rounded-md bg-red-50 p-3 text-sm text-red-800">
          The host agent is not reachable, so no ISO can be listed. Start it (see the README) and reload.
        </p>
      )}
      <CreateGuestForm isos={info ?? []} limits={LIMITS} nameRule={GUEST_NAME_RULE} networks={networks} />
      {templates.length > 0 && (
        <section className="space-y-2">
          <h2 className="text-lg font-semibold">From a template</h2>
          <ul className="card divide-y divide-slate-100">
            {templates.map((t) => (
              <li key={t.id} className="flex items-center justify-between px-4 py-2 text-sm">
                <span>
                  <span className="font-medium">{t.name}</span>{" "}
                  <span className="text-slate-500">
                    {t.vcpus} vCPU(s), {t.memoryMiB} MiB{t.description ? ` · ${t.description.slice(0, 80)}` : ""}
                  </span>
                </span>
                <Link href={`/guests/${t.id}`} className="btn">
                  Use template
                </Link>
              </li>
            ))}
          </ul>
        </section>
      )}
      <section className="space-y-2">
        <h2 className="text-lg font-semibold">Import a definition</h2>
        <ImportForm />
      </section>
    </div>
  );
}
