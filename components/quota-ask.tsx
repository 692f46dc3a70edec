import Link from "next/link";
import type { QuotaRefusal } from "@/server/domain/types";

/**
 * Beside a quota's refusal: a link to ask an admin for more, with the team, the quota and
 * the limit that would have let the change through filled in.
 */
export function AskForMore({ quota }: { quota: QuotaRefusal | null | undefined }) {
  if (!quota) return null;
  const params = new URLSearchParams({ team: quota.teamId, resource: quota.resource, scope: quota.scope, amount: String(quota.used + quota.asked) });
  return (
    <Link href={`/quotas?${params}#ask`} className="ml-2 font-medium text-indigo-700 underline" data-testid="ask-for-more">
      Ask for more
    </Link>
  );
}
