/**
 * The REST API's bodies for managed networks (server/web/networks.ts), registered with the
 * API's other components (schemas.ts): what is sent is checked with the same schemas the
 * Networks page's actions use.
 */
import { z } from "zod";
import { networkFirewall, networkForward } from "../../domain/network-rules";
import { networkInput } from "../../domain/validation";
import { networkRulesInput, reservationInput, type NetworkView } from "../networks";
import { apiSchemas } from "./schemas";

export const newNetwork = networkInput.register(apiSchemas, { id: "NewNetwork", description: "NAT and isolated: dhcp \"auto\" (the upper half of the subnet), \"none\" (isolated only) or { start, end }; bridged (admins): the host's bridge and the VLANs its cards may use" });

export const forward = networkForward.register(apiSchemas, { id: "NetworkForward" });
export const firewall = networkFirewall.register(apiSchemas, { id: "NetworkFirewall" });
export const rulesUpdate = networkRulesInput.register(apiSchemas, { id: "NetworkRules", description: "The network's forwards and firewall, replaced as one." });

export const networkView = z
  .object({
    id: z.string(),
    name: z.string(),
    kind: z.enum(["user", "nat", "isolated", "bridged"]),
    teamId: z.string(),
    team: z.string(),
    owner: z.string(),
    description: z.string(),
    subnet: z.string().nullable(),
    gateway: z.string().nullable(),
    dhcp: z.object({ start: z.string(), end: z.string() }).nullable(),
    domain: z.string().nullable(),
    ipv6: z.string().nullable().describe("the IPv6 prefix of a NAT or isolated network with IPv6"),
    bridge: z.string().nullable().describe("bridged networks: the host's bridge"),
    vlans: z.string().describe("bridged networks: the VLANs its cards may use (\"\": none)"),
    nics: z.array(z.object({ guestId: z.string(), guest: z.string(), mac: z.string(), position: z.number().int(), vlan: z.number().int().nullable(), reservedIp: z.string().nullable(), hostName: z.string().nullable() })),
    forwards: z.array(forward),
    firewall,
    mayChange: z.boolean(),
    mayDelete: z.boolean(),
    updatedAt: z.string(),
  })
  .register(apiSchemas, { id: "Network" });
// The answer's schema and the view it serializes are one shape: a field added to one and not
// the other does not compile (the API test would find it too, later).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameShape: Same<z.infer<typeof networkView>, NetworkView> = true;
void sameShape;

export const networkList = z.object({ items: z.array(networkView) }).register(apiSchemas, { id: "NetworkList" });

export const addressTable = z
  .object({
    rows: z.array(z.object({ ip: z.string(), use: z.enum(["gateway", "leased"]), mac: z.string().nullable(), holder: z.string().nullable(), expires: z.number().nullable() })),
    rangeSize: z.number().int(),
    free: z.number().int(),
  })
  .register(apiSchemas, { id: "NetworkAddresses" });

export const counters = z
  .object({
    rules: z.record(z.string(), z.object({ packets: z.number(), bytes: z.number() })),
    defaultIn: z.number(),
    defaultOut: z.number(),
    spoofed: z.number(),
  })
  .register(apiSchemas, { id: "NetworkCounters" });

export const forwardTest = z.strictObject({ protocol: z.enum(["tcp", "udp"]), hostPort: z.number().int().min(1).max(65535) }).register(apiSchemas, { id: "ForwardTest" });
export const forwardTestResult = z.object({ answered: z.boolean(), message: z.string() }).register(apiSchemas, { id: "ForwardTestResult" });
export const linkRequest = z.strictObject({ up: z.boolean() }).register(apiSchemas, { id: "LinkRequest" });
export const reservationRequest = reservationInput.register(apiSchemas, { id: "Reservation", description: "ip null: an address the host chooses; name null: the guest's name" });
