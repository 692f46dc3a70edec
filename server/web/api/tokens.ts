/** An API token as the API lists it (dates as ISO 8601). */
import type { z } from "zod";
import type { TokenView } from "../../auth/api-tokens";
import type { tokenView } from "./schemas";

export function tokenJson(t: TokenView): z.infer<typeof tokenView> {
  return {
    id: t.id,
    name: t.name,
    scope: t.scope,
    team: t.team,
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt.toISOString(),
    lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
    revokedAt: t.revokedAt?.toISOString() ?? null,
  };
}
