"use server";

import { authedAction } from "@/server/web/action";
import { createNetwork, deleteNetwork, reserveCard, setCardLink, testNetworkForward, updateNetworkRules } from "@/server/web/networks";

/** A managed network in the user's team (the Networks page). */
export const makeNetwork = authedAction("network-create", async (user, input: unknown) => createNetwork(user, input));

/** Removes a managed network no card is on. */
export const removeNetwork = authedAction("network-delete", async (user, id: string) => {
  await deleteNetwork(user, id);
  return null;
});

/** A network's port forwards and firewall, replaced as one (the network's page). */
export const saveNetworkRules = authedAction("network-rules", async (user, id: string, input: unknown, ifMatch: string) => {
  await updateNetworkRules(user, id, input, ifMatch);
  return null;
});

/** Connects from the host to one of a network's forwards. */
export const testForward = authedAction("network-forward-test", async (user, id: string, protocol: "tcp" | "udp", hostPort: number) =>
  testNetworkForward(user, id, protocol === "udp" ? "udp" : "tcp", Number(hostPort)),
);

/** A running guest's card's link up or down. */
export const setLink = authedAction("nic-link", async (user, guestId: string, index: number, up: boolean) => {
  await setCardLink(user, guestId, Number(index), up === true);
  return null;
});

/** A card's fixed address and host name on its network (null: chosen by the host, the guest's name). */
export const reserveAddress = authedAction("nic-reservation", async (user, guestId: string, index: number, input: unknown) => {
  await reserveCard(user, guestId, Number(index), input);
  return null;
});
