import { GuesthouseError } from "@/server/domain/errors";
import { listGuests, PAGE_SIZE_MAX } from "@/server/web/api/guests";
import { apiRoute, json } from "@/server/web/api/http";

export const dynamic = "force-dynamic";

/** `GET /api/v1/guests?page=1&pageSize=100`: the guests the caller may see, in name order. */
export const GET = apiRoute(async ({ request, user }) => {
  const query = new URL(request.url).searchParams;
  const whole = (name: string, fallback: number, max: number) => {
    const raw = query.get(name);
    if (raw === null) return fallback;
    if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new GuesthouseError("invalid-input", `${name} is a whole number from 1 to ${max}.`);
    return Number(raw);
  };
  return json(await listGuests(user, whole("page", 1, 1_000_000), whole("pageSize", 100, PAGE_SIZE_MAX)));
});
