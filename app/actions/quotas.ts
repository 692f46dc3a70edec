"use server";

import { revalidatePath } from "next/cache";
import { authedAction } from "@/server/web/action";
import { recordEvent } from "@/server/web/audit";
import { askForMore, decideRequest, setLimit } from "@/server/web/quota-admin";

/** Sets or removes a team's limit, or a member's within it (admins). */
export const setQuotaLimit = authedAction("set-quota", async (user, teamId: string, userId: string, resource: unknown, amount: unknown) => {
  const limit = await setLimit(user, teamId, userId, resource, amount);
  revalidatePath("/quotas");
  return limit;
});

/** Asks an admin for a higher limit. */
export const requestMore = authedAction("ask-quota", async (user, input: { teamId: unknown; resource: unknown; scope: unknown; amount: unknown; reason: unknown }) => {
  const request = await askForMore(user, input ?? {});
  await recordEvent("quota-request", true, `asked for more ${String(input.resource)}`, user, null, { teamId: String(input.teamId), params: { resource: input.resource, scope: input.scope, amount: input.amount } }).catch(() => {});
  revalidatePath("/quotas");
  return request;
});

/** Approves (the limit changes) or declines (with a note) a request for more (admins). */
export const answerRequest = authedAction("answer-quota", async (user, id: string, approve: boolean, note: unknown) => {
  const decided = await decideRequest(user, id, approve === true, note);
  await recordEvent("quota-answer", true, `${approve === true ? "approved" : "declined"} a request for more ${decided.resource}`, user, null, {
    teamId: decided.teamId,
    params: { request: id, approve: approve === true, amount: decided.amount.toString() },
  }).catch(() => {});
  revalidatePath("/quotas");
  return null;
});
