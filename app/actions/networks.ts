"use server";

import { authedAction } from "@/server/web/action";
import { createNetwork, deleteNetwork } from "@/server/web/networks";

/** A managed network in the user's team (the Networks page). */
export const makeNetwork = authedAction("network-create", async (user, input: unknown) => createNetwork(user, input));

/** Removes a managed network no card is on. */
export const removeNetwork = authedAction("network-delete", async (user, id: string) => {
  await deleteNetwork(user, id);
  return null;
});
