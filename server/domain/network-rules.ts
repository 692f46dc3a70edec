/**
 * What a managed network lets through, as the web stores it and the agent applies it:
 * port forwards from the host to a guest's card, and firewall rules with a default for
 * each direction. The schemas are shared by the web's forms and API and the agent's
 * protocol, so both refuse the same things.
 *
 * Where they apply (server/agent/networks/firewall.ts):
 *   - Forwards: a connection to any of the host's addresses on the forwarded port (from
 *     outside, from the host itself, from another guest) reaches the card's address.
 *   - Rules and defaults: on what crosses the host (to and from the world, the host,
 *     other networks), with state: answers to allowed connections always come back.
 *     "in" is towards the guests, "out" from them.
 *   - Deny rules also apply between guests of the same network (frames on the bridge,
 *     without connection state there: a deny blocks both ways of its match).
 * Every rule counts the packets it matched.
 */
import ipaddr from "ipaddr.js";
import { z } from "zod";

const MAC = /^52:54:00(:[0-9a-f]{2}){3}$/;
const ruleId = z.string().regex(/^[a-z0-9]{1,40}$/, "A rule's id is 1 to 40 lowercase letters and digits.");
const port = (what: string) => z.number({ error: `${what} is a whole number from 1 to 65535.` }).int().min(1, `${what} is 1 to 65535.`).max(65535, `${what} is 1 to 65535.`);
const cidr = z
  .string()
  .trim()
  .max(18)
  .refine((text) => ipaddr.IPv4.isValidCIDRFourPartDecimal(text) || ipaddr.IPv4.isValidFourPartDecimal(text), "An address range is IPv4 in CIDR form, such as 192.168.1.0/24 (or one address).")
  .transform((text) => (text.includes("/") ? text : `${text}/32`))
  .refine((text) => {
    const [address, prefix] = ipaddr.IPv4.parseCIDR(text);
    return ipaddr.IPv4.networkAddressFromCIDR(text).toString() === address.toString() || prefix === 32;
  }, "The address range has host bits set; write its first address (10.0.0.0/8, not 10.1.2.3/8).");

export const FORWARD_LIMIT = 64;
export const RULE_LIMIT = 128;

/** Host ports (one, or a range of the same length on the guest) to a card's ports. */
export const networkForward = z
  .strictObject({
    protocol: z.enum(["tcp", "udp"]),
    hostPort: port("The host port"),
    /** The last host port of a range (absent: one port). */
    hostPortEnd: port("The range's last host port").optional(),
    /** The card (its MAC) on this network that gets the traffic. */
    mac: z.string().regex(MAC, "A card is named by its MAC address, such as 52:54:00:12:34:56."),
    guestPort: port("The guest port"),
  })
  .refine((f) => f.hostPortEnd === undefined || f.hostPortEnd >= f.hostPort, { message: "A range's last host port comes after its first.", path: ["hostPortEnd"] })
  // nftables maps a range to the same ports only: a range keeps its numbers on the guest.
  .refine((f) => f.hostPortEnd === undefined || f.hostPortEnd === f.hostPort || f.guestPort === f.hostPort, { message: "A range of ports goes to the same ports on the guest: give the guest port as the range's first.", path: ["guestPort"] });
export type NetworkForward = z.infer<typeof networkForward>;

export const firewallRule = z
  .strictObject({
    id: ruleId,
    action: z.enum(["allow", "deny"]),
    direction: z.enum(["in", "out"]),
    protocol: z.enum(["any", "tcp", "udp", "icmp"]),
    /** Ports on the guest's side (in) or the far side (out); tcp and udp only. */
    ports: z.strictObject({ from: port("The first port"), to: port("The last port") }).nullable().default(null),
    /** The far side's addresses; null: any. */
    cidr: cidr.nullable().default(null),
    /** One card (its MAC); null: every card of the network. */
    mac: z.string().regex(MAC, "A card is named by its MAC address.").nullable().default(null),
    comment: z.string().max(200).default(""),
  })
  .refine((r) => r.ports === null || r.ports.to >= r.ports.from, { message: "The last port comes after the first.", path: ["ports"] })
  .refine((r) => r.ports === null || r.protocol === "tcp" || r.protocol === "udp", { message: "Ports go with tcp or udp.", path: ["ports"] });
export type FirewallRule = z.infer<typeof firewallRule>;

export const networkFirewall = z.strictObject({
  /** What comes in to the guests and matches no rule (answers to their own connections always do). */
  defaultIn: z.enum(["allow", "deny"]),
  /** What the guests send out and matches no rule. */
  defaultOut: z.enum(["allow", "deny"]),
  rules: z.array(firewallRule).max(RULE_LIMIT, `A network has at most ${RULE_LIMIT} rules.`),
});
export type NetworkFirewall = z.infer<typeof networkFirewall>;

/** A NAT network's firewall until someone changes it: nothing comes in unasked, everything goes out. */
export const DEFAULT_FIREWALL: NetworkFirewall = { defaultIn: "deny", defaultOut: "allow", rules: [] };

/** The host ports a forward takes, first and last. */
export function hostPortsOf(f: NetworkForward): { first: number; last: number } {
  return { first: f.hostPort, last: f.hostPortEnd ?? f.hostPort };
}

/** The first forward of `forwards` whose host ports overlap another's of the same protocol, or null. */
export function overlappingForward(forwards: readonly NetworkForward[]): NetworkForward | null {
  for (const [i, a] of forwards.entries()) {
    for (const b of forwards.slice(i + 1)) {
      const [x, y] = [hostPortsOf(a), hostPortsOf(b)];
      if (a.protocol === b.protocol && x.first <= y.last && y.first <= x.last) return b;
    }
  }
  return null;
}
