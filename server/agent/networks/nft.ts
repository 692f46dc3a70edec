/**
 * The nftables table of one managed network, as the text `nft -f` applies in one
 * transaction: the table is added (so that deleting it cannot fail), deleted and written
 * anew in the same file, so a change replaces the whole table at once or not at all.
 *
 *   NAT:      the guests reach out through the host (masquerade); from outside only
 *             answers to their own connections come in; guests on other bridges are not
 *             reached.
 *   isolated: nothing crosses the bridge: guests reach each other and the gateway only.
 *
 * Both: a guest sends from its subnet only, and each port (a guest's tap, ports.ts) only
 * with its own MAC and its own address: a second table, of the bridge family, sees every
 * frame a tap brings in, including those to other guests on the same bridge, which never
 * reach the inet table. Spoofed frames are counted and dropped; DHCP (from 0.0.0.0) and
 * IPv6 (link-local and SLAAC addresses the agent does not assign) pass the address check.
 * No guest sends router advertisements (only dnsmasq, from the host, does): a guest's are
 * dropped and counted as spoofed.
 *
 *   IPv6 (an option of both, network-plan.ts planIpv6): the bridge has the /64's ::1, a
 *   guest's IPv6 source must be in the /64 (or link-local) when it reaches the host, and a
 *   NAT network masquerades the /64 as it does its IPv4 subnet. A NAT network without IPv6
 *   forwards none. Firewall rules naming a card or addresses are IPv4 (network-rules.ts).
 *
 *   bridged:  the host's own bridge (an admin's br0) carries the guests to the LAN; the
 *             agent adds only the bridge-family table, with each port's MAC check (the
 *             guests' addresses are the LAN's, unknown here) and nothing else.
 */
import { createHash } from "node:crypto";
import type { Ipv4Plan, Ipv6Plan } from "../../domain/network-plan";
import { DEFAULT_FIREWALL, type NetworkFirewall, type NetworkForward } from "../../domain/network-rules";
import { bridgeDenyRules, forwardChainRules, forwardNatRules, hostOutputRules } from "./firewall";
import { policedRate, type Port } from "./ports";

export type NetworkRules = RoutedRules | BridgedRules;

/** A bridged network's rules: its ports' MAC checks in the bridge-family table, nothing more. */
export interface BridgedRules {
  id: string;
  kind: "bridged";
  /** The host's bridge the taps join. */
  bridge: string;
  ports: readonly Port[];
}

export interface RoutedRules {
  /** The network's id: names its table. */
  id: string;
  kind: "nat" | "isolated";
  bridge: string;
  ipv4: Ipv4Plan;
  /** The IPv6 /64, when the network has IPv6. */
  ipv6?: Ipv6Plan | null;
  /** The guests' taps on the bridge. */
  ports: readonly Port[];
  /** Rules and defaults (NAT networks; isolated ones pass nothing across the host). */
  firewall?: NetworkFirewall;
  /** Port forwards from the host (NAT networks). */
  forwards?: readonly NetworkForward[];
  /** Where forwards listen, as for user-mode forwards (GUESTHOUSE_FORWARD_ADDRESS; firewall.ts forwardNatRules). */
  forwardAddress?: string;
}

/** Every managed network's bridge (and so its rules) is named with this prefix. */
export const BRIDGE_PREFIX = "gh-";

/** A network's bridge: the prefix and a hash of its id, within the kernel's 15 characters. */
export const bridgeName = (id: string) => `${BRIDGE_PREFIX}${createHash("sha256").update(id).digest("hex").slice(0, 11)}`;

/** The table's name: one per network, so a change touches no one else's rules. */
export const tableName = (id: string) => `guesthouse_${id}`;

export function rulesetOf(n: NetworkRules): string {
  const table = `inet ${tableName(n.id)}`;
  // A bridged network has no inet table (removed, should one be there) and checks MACs only.
  if (n.kind === "bridged") return [`add table ${table}`, `delete table ${table}`, ...portTable(n, DEFAULT_FIREWALL), ""].join("\n");
  const br = JSON.stringify(n.bridge);
  const subnet = n.ipv4.subnet;
  const v6 = n.ipv6 ?? null;
  const firewall = n.firewall ?? DEFAULT_FIREWALL;
  const forward =
    n.kind === "nat"
      ? [
          `iifname ${br} ip saddr != ${subnet} counter drop comment "spoofed source"`,
          ...(v6
            ? [`iifname ${br} ip6 saddr != ${v6.prefix} counter drop comment "spoofed source"`]
            : [`iifname ${br} meta nfproto ipv6 counter drop comment "no IPv6"`, `oifname ${br} meta nfproto ipv6 counter drop comment "no IPv6"`]),
          ...forwardChainRules(n.bridge, firewall, n.ports),
        ]
      : [`iifname ${br} oifname ${br} accept`, `iifname ${br} counter drop comment "isolated"`, `oifname ${br} counter drop comment "isolated"`];
  const nat = n.kind === "nat" ? forwardNatRules(n.ipv4, n.bridge, n.forwards ?? [], n.ports, n.forwardAddress ?? "127.0.0.1") : { dnat: [], output: [], hairpin: [] };
  return [
    `add table ${table}`,
    `delete table ${table}`,
    `table ${table} {`,
    "  chain forward {",
    "    type filter hook forward priority filter; policy accept;",
    ...forward.map((r) => `    ${r}`),
    "  }",
    "  chain from_host {",
    "    type filter hook output priority filter; policy accept;",
    ...(n.kind === "nat" ? hostOutputRules(subnet, firewall, n.ports) : []).map((r) => `    ${r}`),
    "  }",
    "  chain input {",
    "    type filter hook input priority filter; policy accept;",
    `    iifname ${br} ip saddr != ${subnet} ip saddr != 0.0.0.0 counter drop comment "spoofed source"`,
    // Link-local (neighbour discovery, router solicitations) and :: (duplicate address detection) are every guest's.
    ...(v6 ? [`    iifname ${br} ip6 saddr != ${v6.prefix} ip6 saddr != fe80::/10 ip6 saddr != :: counter drop comment "spoofed source"`] : []),
    "  }",
    ...(n.kind === "nat"
      ? [
          "  chain postrouting {",
          "    type nat hook postrouting priority srcnat; policy accept;",
          ...nat.hairpin.map((r) => `    ${r}`),
          `    ip saddr ${subnet} ip daddr != ${subnet} counter masquerade`,
          ...(v6 ? [`    ip6 saddr ${v6.prefix} ip6 daddr != ${v6.prefix} counter masquerade`] : []),
          "  }",
          "  chain prerouting {",
          "    type nat hook prerouting priority dstnat; policy accept;",
          ...nat.dnat.map((r) => `    ${r}`),
          "  }",
          "  chain output {",
          "    type nat hook output priority -100; policy accept;",
          ...nat.output.map((r) => `    ${r}`),
          "  }",
        ]
      : []),
    "}",
    ...portTable(n, firewall),
    "",
  ].join("\n");
}

/**
 * The bridge-family table: each port sends with its own MAC and address only, and (the
 * agent's own bridges) no router advertisements; deny rules between ports.
 */
function portTable(n: NetworkRules, firewall: NetworkFirewall): string[] {
  const table = `bridge ${tableName(n.id)}`;
  const rules = n.ports.flatMap((p) => {
    const tap = JSON.stringify(p.tap);
    return [
      `iifname ${tap} ether saddr != ${p.mac} counter drop comment "spoofed MAC"`,
      `iifname ${tap} arp saddr ether != ${p.mac} counter drop comment "spoofed ARP"`,
      // On a LAN (bridged) a guest may be its router; on the agent's networks the host is.
      ...(n.kind !== "bridged" ? [`iifname ${tap} icmpv6 type nd-router-advert counter drop comment "spoofed router advertisement"`] : []),
      ...(p.ip
        ? [
            // Two comparisons, not an anonymous set: a set per port is a kernel object per port, and nft -f slows with them.
            `iifname ${tap} arp saddr ip != 0.0.0.0 arp saddr ip != ${p.ip} counter drop comment "spoofed ARP"`,
            `iifname ${tap} ip saddr != 0.0.0.0 ip saddr != ${p.ip} counter drop comment "spoofed address"`,
          ]
        : []),
      // What the guest sends over its limit, after the checks (a spoofed frame is not counted
      // against it). What reaches it is shaped on its tap instead (open-taps.py): this
      // kernel can shape a device's output, not its input.
      ...(p.bandwidth?.outMbit ? [`iifname ${tap} ${policedRate(p.bandwidth.outMbit)} counter drop comment "over its bandwidth out"`] : []),
    ];
  });

  return [
    `add table ${table}`,
    `delete table ${table}`,
    `table ${table} {`,
    "  chain ports {",
    "    type filter hook prerouting priority filter; policy accept;",
    ...rules.map((r) => `    ${r}`),
    "  }",
    "  chain between {",
    "    type filter hook forward priority filter; policy accept;",
    ...bridgeDenyRules(firewall, n.ports).map((r) => `    ${r}`),
    "  }",
    "}",
  ];
}

/** The text that removes the table (added first, so removing a table that is not there is no error). */
export function removalOf(id: string): string {
  return ["inet", "bridge"].map((family) => `add table ${family} ${tableName(id)}\ndelete table ${family} ${tableName(id)}\n`).join("");
}
