/**
 * A team's networks. Every team has "user" (QEMU's user-mode NAT with built-in DHCP,
 * nothing on the host). Members also make managed networks of their team (NAT or
 * isolated, run by the host's agent: server/agent/networks/); a guest's network cards
 * name the team's network they are on.
 *
 * A managed network's row is written first and the agent told second; if the agent
 * refuses (a subnet overlapping a route of the host, say), the row goes again. Its id is
 * the agent's name for it. Removal asks the agent first (it refuses while guests run with
 * cards on it) and the database second (which refuses while any card names it); a
 * refusal there sets the agent's network up again.
 *
 * Bridged networks (decided here): a bridged network puts guests on a bridge of the host
 * (its LAN), which members cannot judge the risk of, so only admins make and remove one
 * (canManageBridgedNetworks), in the team they work in, naming the host's bridge and the
 * VLANs the team's cards may use on it ("10, 20, 100-199"; none: untagged only). The
 * team's members then put cards on it as on any network of theirs, and choose each card's
 * VLAN among those (a card's VLAN is refused outside them, and on other networks). It has
 * no subnet, DHCP, domain, rules or forwards: the LAN's are its own. Several teams may have
 * networks on one bridge, each with its VLANs.
 * NAT and isolated networks may have IPv6 too (`ipv6`: a unique local /64 from the id,
 * network-plan.ts planIpv6), chosen when they are made.
 */
import { assertCan, assertMayCreate, can, canManageBridgedNetworks, guestNameFor, ownedWhere, refusalFor } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import type { Prisma } from "../db/generated/client";
import { isForeignKeyViolation, isUniqueViolationOn } from "../db/errors";
import { GuesthouseError } from "../domain/errors";
import { formatVlanList, overlaps, parseHostBridge, parseVlanList, planIpv4, planIpv6, vlanInList, type Ipv4Plan } from "../domain/network-plan";
import { DEFAULT_FIREWALL, FORWARD_LIMIT, hostPortsOf, networkFirewall, networkForward, overlappingForward, type NetworkFirewall, type NetworkForward } from "../domain/network-rules";
import { networkInput, parseOrThrow, USER_NETWORK, type NetworkInput } from "../domain/validation";
import ipaddr from "ipaddr.js";
import { z } from "zod";
import { hostLabel } from "../domain/names";
import type { NetworkRequest } from "../agent-protocol";
import { recordEvent } from "./audit";
import { agentFor, loadGuest } from "./guests";
import { localHost } from "./hosts";
import { refreshPage } from "./refresh";

export type NetworkKind = "user" | "nat" | "isolated" | "bridged";

/** A network as pages and the API show it. */
export interface NetworkView {
  id: string;
  name: string;
  kind: NetworkKind;
  teamId: string;
  team: string;
  owner: string;
  description: string;
  /** Managed networks only. */
  subnet: string | null;
  gateway: string | null;
  dhcp: { start: string; end: string } | null;
  domain: string | null;
  /** The IPv6 prefix ("fd…::/64") of a NAT or isolated network with IPv6, else null. */
  ipv6: string | null;
  /** Bridged networks: the host's bridge, and the VLANs its cards may use ("" none). */
  bridge: string | null;
  vlans: string;
  /** The cards on it, each with its guest (named as the viewer may see it). */
  nics: Array<{ guestId: string; guest: string; mac: string; position: number; vlan: number | null; reservedIp: string | null; hostName: string | null }>;
  /** Port forwards from the host (NAT networks). */
  forwards: NetworkForward[];
  firewall: NetworkFirewall;
  /** Whether the viewer may change (rules, forwards) or delete it. */
  mayChange: boolean;
  mayDelete: boolean;
  /** When it was last changed: a change made on an older read is refused. */
  updatedAt: string;
}

const networkInclude = {
  team: { select: { name: true } },
  owner: { select: { username: true } },
  // The network's host, whose agent runs it: read with the row, not asked for again.
  host: { select: { endpoint: true } },
  nics: { orderBy: [{ guestId: "asc" }, { position: "asc" }], select: { mac: true, position: true, vlan: true, reservedIp: true, hostName: true, guest: { select: { id: true, name: true, teamId: true, ownerId: true } } } },
} satisfies Prisma.NetworkInclude;

type NetworkRow = NonNullable<Awaited<ReturnType<typeof findNetwork>>>;

function findNetwork(user: SessionUser, id: string) {
  return db.network.findFirst({ where: { id: String(id).slice(0, 64), ...ownedWhere(user, "view") }, include: networkInclude });
}

function planOf(row: { subnet: string | null; dhcpStart: string | null; dhcpEnd: string | null }): Ipv4Plan | null {
  if (!row.subnet) return null;
  return planIpv4(row.subnet, row.dhcpStart && row.dhcpEnd ? { start: row.dhcpStart, end: row.dhcpEnd } : null);
}

function viewOf(user: SessionUser, row: NetworkRow): NetworkView {
  const plan = planOf(row);
  return {
    id: row.id,
    name: row.name,
    kind: row.mode as NetworkKind,
    teamId: row.teamId,
    team: row.team.name,
    owner: row.owner.username,
    description: row.description,
    subnet: plan?.subnet ?? null,
    gateway: plan?.gateway ?? null,
    dhcp: plan?.dhcp ?? null,
    domain: row.domain,
    ipv6: row.ipv6 ? planIpv6(row.id).prefix : null,
    bridge: row.bridge,
    vlans: row.vlans,
    nics: row.nics.map((n) => ({ guestId: n.guest.id, guest: guestNameFor(user, n.guest), mac: n.mac, position: n.position, vlan: n.vlan, reservedIp: n.reservedIp, hostName: n.hostName })),
    forwards: forwardsOf(row),
    firewall: firewallOf(row),
    // A bridged network has no rules of its own, and is an admin's to remove.
    mayChange: (row.mode === "nat" || row.mode === "isolated") && can(user, "change", row),
    mayDelete: row.mode === "bridged" ? canManageBridgedNetworks(user) : row.mode !== "user" && can(user, "delete", row),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** The networks `user` may see: their teams' (every team's for an admin), user-mode ones first. */
export async function listNetworks(user: SessionUser): Promise<NetworkView[]> {
  const rows = await db.network.findMany({ where: ownedWhere(user, "view"), include: networkInclude, orderBy: [{ teamId: "asc" }, { name: "asc" }] });
  return rows.map((row) => viewOf(user, row)).sort((a, b) => a.team.localeCompare(b.team) || Number(b.kind === "user") - Number(a.kind === "user") || a.name.localeCompare(b.name));
}

/** The names of a team's managed networks on a host, for a card's choice of network. */
export async function teamNetworkNames(teamId: string, hostId: string): Promise<string[]> {
  const rows = await db.network.findMany({ where: { teamId, hostId, mode: { not: "user" } }, orderBy: { name: "asc" }, select: { name: true } });
  return rows.map((r) => r.name);
}

/** A team's managed networks on a host, for a card's choice of network: each with its kind and (bridged) the VLANs its cards may use. */
export async function teamNetworks(teamId: string, hostId: string): Promise<Array<{ name: string; kind: NetworkKind; vlans: string }>> {
  const rows = await db.network.findMany({ where: { teamId, hostId, mode: { not: "user" } }, orderBy: { name: "asc" }, select: { name: true, mode: true, vlans: true } });
  return rows.map((r) => ({ name: r.name, kind: r.mode as NetworkKind, vlans: r.vlans }));
}

/** A /24 for the next network: the first 10.<n>.0.0/24 (n from 100) clear of the host's networks. */
export async function suggestSubnet(): Promise<string> {
  const host = await localHost();
  const taken = (await db.network.findMany({ where: { hostId: host.id, subnet: { not: null } }, select: { subnet: true } })).map((n) => n.subnet!);
  for (let n = 100; n < 255; n++) {
    const subnet = `10.${n}.0.0/24`;
    if (!taken.some((t) => overlaps(t, subnet))) return subnet;
  }
  return "";
}

/** One network, or not-found when `user` may not see it. */
export async function loadNetwork(user: SessionUser, id: string): Promise<NetworkView> {
  const row = await findNetwork(user, id);
  if (!row) throw new GuesthouseError("not-found", "There is no such network, or it is not yours to see.");
  return viewOf(user, row);
}

/** A team's user-mode network on a host, made the first time it is asked for. */
export async function userModeNetwork(team: { teamId: string; ownerId: string; hostId: string }): Promise<{ id: string }> {
  return db.network.upsert({
    where: { teamId_name: { teamId: team.teamId, name: USER_NETWORK } },
    create: { name: USER_NETWORK, mode: "user", ownerId: team.ownerId, teamId: team.teamId, hostId: team.hostId },
    update: {},
    select: { id: true },
  });
}

/**
 * The network rows a guest's cards go on, by the names its definition or form gives (none
 * or "user": the team's user-mode network); a name the team has no network of on the
 * guest's host is refused, naming the card. A card's VLAN (`vlans`, by position) must be
 * one its bridged network lets its cards use.
 */
export async function nicNetworks(team: { teamId: string; ownerId: string; hostId: string }, names: ReadonlyArray<string | undefined>, vlans: ReadonlyArray<number | undefined> = []): Promise<string[]> {
  const wanted = [...new Set(names.filter((n): n is string => n !== undefined && n !== USER_NETWORK))];
  const rows = wanted.length ? await db.network.findMany({ where: { teamId: team.teamId, hostId: team.hostId, name: { in: wanted } }, select: { id: true, name: true, mode: true, vlans: true } }) : [];
  const byName = new Map(rows.map((r) => [r.name, r]));
  const user = names.some((n) => n === undefined || n === USER_NETWORK) ? (await userModeNetwork(team)).id : null;
  return names.map((name, i) => {
    if (name === undefined || name === USER_NETWORK) return user!;
    const row = byName.get(name);
    if (!row) throw new GuesthouseError("invalid-input", `Network card ${i + 1} is on "${name}", and the team has no network of that name on this host. Choose one on the Networks page, or "${USER_NETWORK}".`);
    const vlan = vlans[i];
    if (vlan !== undefined && row.mode !== "bridged") throw new GuesthouseError("invalid-input", `Network card ${i + 1} has VLAN ${vlan}, but ${name} is a ${row.mode === "nat" ? "NAT" : row.mode} network: VLAN tags are for cards on bridged networks.`);
    if (vlan !== undefined && !vlanInList(vlan, parseVlanList(row.vlans))) {
      throw new GuesthouseError("invalid-input", `Network card ${i + 1} is on VLAN ${vlan}, which ${name} does not let its cards use (${row.vlans ? `only ${row.vlans}` : "none: its cards go untagged"}). Ask an admin for it.`);
    }
    return row.id;
  });
}

type ManagedRow = { mode: string; subnet: string | null; dhcpStart: string | null; dhcpEnd: string | null; domain: string | null; forwards: string; firewall: string; ipv6: boolean; bridge: string | null };

/** A row's forwards, as stored (validated when they were saved). */
function forwardsOf(row: { forwards: string }): NetworkForward[] {
  return JSON.parse(row.forwards) as NetworkForward[];
}

/** A row's firewall, or the default before anyone changed it. */
function firewallOf(row: { firewall: string }): NetworkFirewall {
  return row.firewall ? (JSON.parse(row.firewall) as NetworkFirewall) : DEFAULT_FIREWALL;
}

/** What the agent is asked to run for a network row. */
function requestOf(row: ManagedRow, reservations: NonNullable<Extract<NetworkRequest, { kind: "nat" | "isolated" }>["reservations"]> = []): NetworkRequest {
  if (row.mode === "bridged") return { kind: "bridged", bridge: row.bridge! };
  return {
    ...(reservations.length ? { reservations } : {}),
    kind: row.mode as "nat" | "isolated",
    subnet: row.subnet!,
    dhcp: row.dhcpStart && row.dhcpEnd ? { start: row.dhcpStart, end: row.dhcpEnd } : null,
    domain: row.domain!,
    forwards: forwardsOf(row),
    firewall: firewallOf(row),
    ...(row.ipv6 ? { ipv6: true } : {}),
  };
}

/**
 * Makes a managed network in the user's team on the local host: its subnet checked (a
 * private /16 to /29, the DHCP range inside it), clear of every other network of the
 * host (whoever's) and of the host's routes (the agent checks those), then set up by the
 * agent. Nothing is left when any step fails.
 */
export async function createNetwork(user: SessionUser, raw: unknown): Promise<{ id: string }> {
  if ((raw as { kind?: unknown } | null)?.kind === "bridged" && !canManageBridgedNetworks(user)) {
    throw new GuesthouseError("forbidden", "Only an admin makes a bridged network: it puts guests on the host's own LAN. Ask one to make it for your team, or make a NAT network.");
  }
  const input: NetworkInput = parseOrThrow(networkInput, raw, "The network");
  assertMayCreate(user, user.teamId);
  if (input.kind === "bridged") return createBridgedNetwork(user, input);
  const plan = planIpv4(input.subnet, input.dhcp === "none" ? null : input.dhcp);
  if (input.kind === "nat" && !plan.dhcp) throw new GuesthouseError("invalid-input", "A NAT network hands out addresses: give it a DHCP range (or choose isolated).");
  const host = await localHost();
  const others = await db.network.findMany({ where: { hostId: host.id, subnet: { not: null } }, select: { name: true, subnet: true, teamId: true, ownerId: true } });
  const clash = others.find((o) => overlaps(o.subnet!, plan.subnet));
  if (clash) {
    const named = can(user, "view", clash) ? `the network ${clash.name}` : "another team's network on this host";
    throw new GuesthouseError("conflict", `${plan.subnet} overlaps ${named} (${clash.subnet}); choose another subnet.`);
  }
  return insertThenApply(
    user,
    host,
    {
      name: input.name,
      mode: input.kind,
      subnet: plan.subnet,
      dhcpStart: plan.dhcp?.start ?? null,
      dhcpEnd: plan.dhcp?.end ?? null,
      domain: input.domain,
      ipv6: input.ipv6,
      description: input.description,
    },
    `network ${input.name} (${input.kind}, ${plan.subnet}${input.ipv6 ? ", IPv6" : ""})`,
  );
}

/**
 * A network's row in the user's team, then the host's agent told to set it up; when the
 * agent refuses, the row goes again (and the refusal is audited): nothing is left half-made.
 */
async function insertThenApply(
  user: SessionUser,
  host: { id: string; endpoint: string },
  data: Omit<Prisma.NetworkUncheckedCreateInput, "ownerId" | "teamId" | "hostId">,
  what: string,
): Promise<{ id: string }> {
  let row: { id: string } & ManagedRow;
  try {
    row = await db.network.create({ data: { ...data, ownerId: user.id, teamId: user.teamId, hostId: host.id }, select: managedSelect });
  } catch (err) {
    if (isUniqueViolationOn(err, "name")) throw new GuesthouseError("conflict", `Your team already has a network named "${data.name}". Choose another name.`);
    throw err;
  }
  try {
    // A new network has no cards, so no reservations yet.
    await agentFor(host).applyNetwork(row.id, requestOf(row));
  } catch (err) {
    await db.network.delete({ where: { id: row.id } }).catch((e: unknown) => console.error("networks: could not remove the row of a network the agent refused", e));
    await recordEvent("network-create", false, `${what}: ${(err as Error).message}`, user, null).catch(() => {});
    throw err;
  }
  await recordEvent("network-create", true, what, user, null).catch((e: unknown) => console.error("networks: could not record the event", e));
  refreshPage("/networks");
  return { id: row.id };
}

const managedSelect = { id: true, mode: true, subnet: true, dhcpStart: true, dhcpEnd: true, domain: true, forwards: true, firewall: true, ipv6: true, bridge: true } satisfies Prisma.NetworkSelect;

/**
 * A bridged network in the admin's current team (the caller checked canManageBridgedNetworks):
 * the host's agent refuses a bridge it does not have (the row goes again).
 */
async function createBridgedNetwork(user: SessionUser, input: Extract<NetworkInput, { kind: "bridged" }>): Promise<{ id: string }> {
  const bridge = parseHostBridge(input.bridge);
  const vlans = formatVlanList(parseVlanList(input.vlans));
  const host = await localHost();
  return insertThenApply(user, host, { name: input.name, mode: "bridged", bridge, vlans, description: input.description }, `network ${input.name} (bridged on ${bridge}${vlans ? `, VLANs ${vlans}` : ""})`);
}

/** Removes a managed network no card is on (running guests' included); the user-mode one stays. */
export async function deleteNetwork(user: SessionUser, id: string): Promise<void> {
  const row = await findNetwork(user, id);
  if (!row) throw new GuesthouseError("not-found", "There is no such network, or it is not yours to see.");
  if (row.mode === "bridged" && !canManageBridgedNetworks(user)) throw new GuesthouseError("forbidden", "Only an admin removes a bridged network. Ask one.");
  if (row.mode !== "bridged") assertCan(user, "delete", row, refusalFor("network", "delete"));
  if (row.mode === "user") throw new GuesthouseError("conflict", "The user-mode network is built in: every team has it, and it cannot be removed.");
  if (row.nics.length) {
    const guests = [...new Set(row.nics.map((n) => guestNameFor(user, n.guest)))];
    throw new GuesthouseError("conflict", `Cards of ${guests.slice(0, 5).join(", ")}${guests.length > 5 ? ", …" : ""} are on ${row.name}; move them to another network first.`);
  }
  const host = row.host;
  const agent = agentFor(host);
  await agent.removeNetwork(row.id).catch((err: unknown) => {
    // Gone from the host already (removed by hand, a fresh host): the row goes all the same.
    if (!(err instanceof GuesthouseError && err.code === "not-found")) throw err;
  });
  try {
    await db.network.delete({ where: { id: row.id } });
  } catch (err) {
    // A card was put on it meanwhile: the network stays, on the host too.
    await agent.applyNetwork(row.id, requestOf(row, await reservationsOf(row.id))).catch((e: unknown) => console.error(`networks: ${row.name} could not be set up again after a refused removal`, e));
    if (isForeignKeyViolation(err)) throw new GuesthouseError("conflict", `A card was put on ${row.name} meanwhile; move it to another network first.`);
    throw err;
  }
  await recordEvent("network-delete", true, `network ${row.name} (${row.subnet ?? `bridged on ${row.bridge}`})`, user, null, { teamId: row.teamId }).catch((e: unknown) => console.error("networks: could not record the event", e));
  refreshPage("/networks");
}

/** One address of a network's table: what it is used for. */
export interface AddressRow {
  ip: string;
  use: "gateway" | "leased";
  mac: string | null;
  /** The guest holding it (as the viewer may name it), or dnsmasq's host name. */
  holder: string | null;
  expires: number | null;
}

/**
 * A managed network's addresses: the gateway, then each lease (with the guest whose card
 * holds it), and how many of the DHCP range are free.
 */
export async function networkAddresses(user: SessionUser, id: string): Promise<{ rows: AddressRow[]; rangeSize: number; free: number }> {
  const row = await findNetwork(user, id);
  if (!row) throw new GuesthouseError("not-found", "There is no such network, or it is not yours to see.");
  const plan = planOf(row);
  if (!plan) return { rows: [], rangeSize: 0, free: 0 };
  const host = row.host;
  const leases = await agentFor(host).networkLeases(row.id).catch(lostOnHost(row.name));
  const guestOf = new Map(row.nics.map((n) => [n.mac, guestNameFor(user, n.guest)]));
  const toInt = (ip: string) => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
  const rangeSize = plan.dhcp ? toInt(plan.dhcp.end) - toInt(plan.dhcp.start) + 1 : 0;
  const inRange = (ip: string) => plan.dhcp !== null && toInt(ip) >= toInt(plan.dhcp.start) && toInt(ip) <= toInt(plan.dhcp.end);
  const rows: AddressRow[] = [
    { ip: plan.gateway, use: "gateway", mac: null, holder: "this host", expires: null },
    ...leases
      .sort((a, b) => toInt(a.ip) - toInt(b.ip))
      .map((l) => ({ ip: l.ip, use: "leased" as const, mac: l.mac, holder: guestOf.get(l.mac) ?? l.hostname, expires: l.expires })),
  ];
  return { rows, rangeSize, free: rangeSize - leases.filter((l) => inRange(l.ip)).length };
}

/** A network's version as an HTTP ETag (its last change's time). */
export function networkEtag(network: Pick<NetworkView, "updatedAt">): string {
  return `"${network.updatedAt}"`;
}

/** The version an If-Match names (an ETag, quoted or weak, or the bare version the page sends). */
export function versionOfEtag(value: string): string {
  return value.trim().replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

/**
 * The host's answer for a network the database has but its host does not (removed by
 * hand, a host set up afresh): a conflict saying so, not the policy's "not found".
 */
function lostOnHost(name: string) {
  return (err: unknown): never => {
    if (err instanceof GuesthouseError && err.code === "not-found") {
      throw new GuesthouseError("conflict", `${name} is not set up on its host (${err.message}) Apply its forwards and firewall again to set it up.`);
    }
    throw err;
  };
}

/** A network's forwards and firewall as its page and the API send them. */
export const networkRulesInput = z.strictObject({
  forwards: z.array(networkForward).max(FORWARD_LIMIT, `A network has at most ${FORWARD_LIMIT} port forwards.`),
  firewall: networkFirewall,
});

/**
 * Replaces a managed network's port forwards and firewall: each card they name must be
 * on the network, no host port may be another network's or a user-mode card's, and
 * `ifMatch` (the updatedAt the person read) must still hold. Saved first, applied by the
 * agent second (it refuses ports outside the host's range or in use); a refusal puts the
 * row back as it was.
 */
export async function updateNetworkRules(user: SessionUser, id: string, raw: unknown, ifMatch?: string): Promise<void> {
  const input = parseOrThrow(networkRulesInput, raw, "The network's rules");
  const row = await findNetwork(user, id);
  if (!row) throw new GuesthouseError("not-found", "There is no such network, or it is not yours to see.");
  assertCan(user, "change", row, refusalFor("network", "change"));
  if (row.mode === "user") throw new GuesthouseError("conflict", "The user-mode network has no rules of its own: forward ports on a user-mode card instead.");
  if (row.mode === "bridged") throw new GuesthouseError("conflict", "A bridged network's guests are on the host's LAN: its own firewall and router decide what reaches them; it has no rules or forwards here.");
  if (row.mode !== "nat" && input.forwards.length) throw new GuesthouseError("invalid-input", "Ports are forwarded to NAT networks only: an isolated network's guests are not reached from outside.");
  if (ifMatch !== undefined && ifMatch !== row.updatedAt.toISOString()) {
    throw new GuesthouseError("stale", `${row.name} was changed since you read it. Reload it and make your change again.`);
  }
  const cards = new Set(row.nics.map((n) => n.mac));
  for (const mac of [...input.forwards.map((f) => f.mac), ...input.firewall.rules.flatMap((r) => (r.mac ? [r.mac] : []))]) {
    if (!cards.has(mac)) throw new GuesthouseError("invalid-input", `No card with the MAC address ${mac} is on ${row.name}. Put the guest's card on this network first.`);
  }
  const ids = input.firewall.rules.map((r) => r.id);
  if (new Set(ids).size !== ids.length) throw new GuesthouseError("invalid-input", "Two rules have the same id.");
  const twice = overlappingForward(input.forwards);
  if (twice) throw new GuesthouseError("invalid-input", `Host port ${twice.protocol} ${twice.hostPort} is forwarded twice.`);
  await assertHostPortsFree(user, row.hostId, row.id, input.forwards);

  const { count } = await db.network.updateMany({
    where: { id: row.id, updatedAt: row.updatedAt },
    data: { forwards: JSON.stringify(input.forwards), firewall: JSON.stringify(input.firewall) },
  });
  if (count === 0) throw new GuesthouseError("stale", `${row.name} was changed by someone else just now. Reload it and make your change again.`);
  const host = row.host;
  try {
    await agentFor(host).applyNetwork(row.id, requestOf({ ...row, forwards: JSON.stringify(input.forwards), firewall: JSON.stringify(input.firewall) }, await reservationsOf(row.id)));
  } catch (err) {
    await db.network.update({ where: { id: row.id }, data: { forwards: row.forwards, firewall: row.firewall } }).catch((e: unknown) => console.error(`networks: ${row.name}'s rules could not be put back`, e));
    await recordEvent("network-rules", false, `rules of network ${row.name}: ${(err as Error).message}`, user, null, { teamId: row.teamId }).catch(() => {});
    throw err;
  }
  await recordEvent("network-rules", true, `rules of network ${row.name}: ${input.forwards.length} forward(s), ${input.firewall.rules.length} rule(s), in ${input.firewall.defaultIn}, out ${input.firewall.defaultOut}`, user, null, { teamId: row.teamId }).catch(() => {});
  refreshPage(`/networks/${row.id}`);
}

/**
 * Host ports another network of the host forwards, or a user-mode card of any guest of
 * the host: refused, naming the holder only to whom may see it.
 */
export async function assertHostPortsFree(user: SessionUser, hostId: string, exceptNetworkId: string | null, forwards: ReadonlyArray<{ protocol: string; hostPort: number; hostPortEnd?: number }>): Promise<void> {
  if (forwards.length === 0) return;
  const wanted = forwards.map((f) => ({ protocol: f.protocol, ...hostPortsOf(f as NetworkForward) }));
  const takes = (protocol: string, port: number) => wanted.some((w) => w.protocol === protocol && w.first <= port && port <= w.last);
  const networks = await db.network.findMany({ where: { hostId, forwards: { not: "[]" }, ...(exceptNetworkId ? { id: { not: exceptNetworkId } } : {}) }, select: { name: true, teamId: true, ownerId: true, forwards: true } });
  for (const other of networks) {
    for (const f of forwardsOf(other)) {
      const { first, last } = hostPortsOf(f);
      for (let p = first; p <= last; p++) {
        if (takes(f.protocol, p)) throw new GuesthouseError("conflict", `Host port ${f.protocol} ${p} is already forwarded to ${can(user, "view", other) ? `the network ${other.name}` : "another team's network"}. Choose another.`);
      }
    }
  }
  const cards = await db.nic.findMany({ where: { guest: { hostId }, forwards: { not: "[]" } }, select: { forwards: true, guest: { select: { name: true, teamId: true, ownerId: true } } } });
  for (const card of cards) {
    for (const f of JSON.parse(card.forwards) as Array<{ protocol: string; hostPort: number }>) {
      if (takes(f.protocol, f.hostPort)) throw new GuesthouseError("conflict", `Host port ${f.protocol} ${f.hostPort} is already forwarded to ${guestNameFor(user, card.guest)}. Choose another.`);
    }
  }
}

/** What the network's rules, defaults and spoofing checks matched, from the host. */
export async function networkCounters(user: SessionUser, id: string) {
  const row = await findNetwork(user, id);
  if (!row) throw new GuesthouseError("not-found", "There is no such network, or it is not yours to see.");
  if (row.mode === "user") throw new GuesthouseError("conflict", "The user-mode network has no rules to count.");
  const host = row.host;
  return agentFor(host).networkCounters(row.id).catch(lostOnHost(row.name));
}

/** Connects from the host to one of the network's TCP forwards: whether the guest answered. */
export async function testNetworkForward(user: SessionUser, id: string, protocol: "tcp" | "udp", hostPort: number): Promise<{ answered: boolean; message: string }> {
  const row = await findNetwork(user, id);
  if (!row) throw new GuesthouseError("not-found", "There is no such network, or it is not yours to see.");
  assertCan(user, "operate", row, "Your role in this network's team lets you see it, not test its forwards.");
  const host = row.host;
  return agentFor(host)
    .testForward(row.id, protocol, hostPort)
    .catch((err: unknown) => {
      // The host's "no such forward" is about the request, not about who may see the network.
      if (err instanceof GuesthouseError && err.code === "not-found") throw new GuesthouseError("invalid-input", err.message);
      throw err;
    });
}

/** A running guest's card's link up or down (a pulled cable), by the card's position from 0. */
export async function setCardLink(user: SessionUser, guestId: string, index: number, up: boolean): Promise<void> {
  const guest = await loadGuest(user, guestId, "operate");
  if (!Number.isInteger(index) || index < 0 || index >= guest.nics.length) throw new GuesthouseError("not-found", `${guest.name} has no network card ${index + 1}.`);
  await agentFor(guest.host).setLink(guest.id, index, up);
  await recordEvent("nic-link", true, `set card ${index + 1} of ${guest.name} ${up ? "up" : "down"}`, user, guest.id).catch(() => {});
}

/** The network's reservations as the agent takes them: each card with a fixed address, by MAC, with its host name. */
async function reservationsOf(networkId: string): Promise<Array<{ mac: string; ip: string; name: string }>> {
  const cards = await db.nic.findMany({ where: { networkId, reservedIp: { not: null } }, select: { mac: true, reservedIp: true, hostName: true, guest: { select: { id: true, name: true } } } });
  return cards.map((c) => ({ mac: c.mac, ip: c.reservedIp!, name: c.hostName ?? hostLabel(c.guest.name, c.guest.id) }));
}

export const reservationInput = z.strictObject({
  /** The address DHCP always gives the card; null: one the agent chooses. */
  ip: z.string().trim().max(15).nullable(),
  /** Its name in the network's domain; null: the guest's. */
  name: z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "A host name is one label of letters, digits and '-', such as web-1.")
    .nullable(),
});

/**
 * A card's static reservation on its NAT or isolated network: an address of the subnet
 * (not the gateway, no other card's) that DHCP always gives it, and its host name in the
 * network's domain. Applied at once: a running card takes it with its next DHCP renewal
 * (its rules follow now). Put back when the host refuses.
 */
export async function reserveCard(user: SessionUser, guestId: string, index: number, raw: unknown): Promise<void> {
  const input = parseOrThrow(reservationInput, raw, "The reservation");
  const guest = await loadGuest(user, guestId, "change");
  const card = guest.nics[index];
  if (!card) throw new GuesthouseError("not-found", `${guest.name} has no network card ${index + 1}.`);
  const network = await db.network.findUniqueOrThrow({ where: { id: card.networkId } });
  if (network.mode !== "nat" && network.mode !== "isolated") {
    throw new GuesthouseError("invalid-input", `Card ${index + 1} of ${guest.name} is on ${network.mode === "user" ? "user-mode networking" : `the bridged network ${network.name}`}, whose addresses are not this dashboard's to give: reservations are for NAT and isolated networks.`);
  }
  const plan = planOf(network)!;
  if (input.ip !== null) {
    if (!ipaddr.IPv4.isValidFourPartDecimal(input.ip) || !ipaddr.IPv4.parse(input.ip).match(ipaddr.IPv4.parseCIDR(plan.subnet))) {
      throw new GuesthouseError("invalid-input", `${input.ip} is not an address of ${network.name} (${plan.subnet}).`);
    }
    const [first, last] = [ipaddr.IPv4.networkAddressFromCIDR(plan.subnet).toString(), ipaddr.IPv4.broadcastAddressFromCIDR(plan.subnet).toString()];
    if (input.ip === plan.gateway || input.ip === first || input.ip === last) {
      throw new GuesthouseError("invalid-input", `${input.ip} is ${input.ip === plan.gateway ? "the network's gateway (this host)" : "the subnet's network or broadcast address"}; choose another.`);
    }
    const taken = await db.nic.findFirst({ where: { networkId: network.id, reservedIp: input.ip, id: { not: card.id } }, select: { guest: { select: { name: true, teamId: true, ownerId: true } } } });
    if (taken) throw new GuesthouseError("conflict", `${input.ip} is reserved for a card of ${guestNameFor(user, taken.guest)}; choose another.`);
  }
  const before = { reservedIp: card.reservedIp, hostName: card.hostName };
  await db.nic.update({ where: { id: card.id }, data: { reservedIp: input.ip, hostName: input.name } });
  // A card's network is on its guest's host.
  const host = guest.host;
  try {
    await agentFor(host).applyNetwork(network.id, requestOf(network, await reservationsOf(network.id)));
  } catch (err) {
    await db.nic.update({ where: { id: card.id }, data: before }).catch((e: unknown) => console.error("networks: a reservation could not be put back", e));
    throw err;
  }
  await recordEvent("nic-reservation", true, input.ip ? `reserved ${input.ip}${input.name ? ` (${input.name})` : ""} for card ${index + 1} of ${guest.name}` : `card ${index + 1} of ${guest.name} takes any address again`, user, guest.id).catch(() => {});
  refreshPage(`/networks/${network.id}`);
}
