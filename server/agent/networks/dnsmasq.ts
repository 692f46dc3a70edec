/**
 * The dnsmasq configuration of one managed network: DHCP on its bridge only (bound to the
 * gateway's address, never the host's other interfaces), leases in a file of the network's
 * own (the dashboard reads guests' addresses from it), and DNS for the network's domain,
 * where guests find each other by name. The file replaces /etc/dnsmasq.conf entirely.
 * With IPv6, it also sends the bridge's router advertisements: the /64 for SLAAC only (no
 * DHCPv6 addresses), the gateway as default router on a NAT network, none on an isolated
 * one (router lifetime 0: the prefix, no route beyond), and answers DNS on the gateway's
 * IPv6 address too.
 */
import type { Ipv4Plan, Ipv6Plan } from "../../domain/network-plan";

export interface DnsmasqSetup {
  bridge: string;
  ipv4: Ipv4Plan;
  /** The IPv6 /64 to advertise, or none. */
  ipv6?: Ipv6Plan | null;
  /** Guests are `<name>.<domain>`. */
  domain: string;
  /** Give the gateway as the guests' router (a NAT network), or no route at all (isolated). */
  router: boolean;
  leaseFile: string;
  pidFile: string;
  /** Answer names outside the domain from the host's resolvers (NAT); else refuse them. */
  upstream: boolean;
  /** MAC → address and host name, one per line (ports.ts hostsFileOf); read again on SIGHUP. */
  hostsFile: string;
}

export function dnsmasqConfig(s: DnsmasqSetup): string {
  const lines = [
    `interface=${s.bridge}`,
    "bind-interfaces",
    `listen-address=${s.ipv4.gateway}`,
    ...(s.ipv6 ? [`listen-address=${s.ipv6.gateway}`] : []),
    "except-interface=lo",
    `pid-file=${s.pidFile}`,
    `dhcp-leasefile=${s.leaseFile}`,
    "dhcp-authoritative",
    "dhcp-no-override",
    `domain=${s.domain}`,
    `local=/${s.domain}/`,
    "expand-hosts",
    "domain-needed",
    "bogus-priv",
    ...(s.upstream ? [] : ["no-resolv"]),
    ...(s.router ? [`dhcp-option=option:router,${s.ipv4.gateway}`] : ["dhcp-option=option:router"]),
    `dhcp-option=option:dns-server,${s.ipv4.gateway}`,
    ...(s.ipv4.dhcp ? [`dhcp-range=${s.ipv4.dhcp.start},${s.ipv4.dhcp.end},${s.ipv4.netmask},1h`] : []),
    `dhcp-hostsfile=${s.hostsFile}`,
    ...(s.ipv6
      ? [
          "enable-ra",
          `dhcp-range=${s.ipv6.prefix.replace(/\/64$/, "")},ra-only,64,1h`,
          // Every 60 s (guests also ask when they come up); lifetime 0: no default route through an isolated network.
          `ra-param=${s.bridge},60${s.router ? "" : ",0"}`,
        ]
      : []),
  ];
  return `${lines.join("\n")}\n`;
}

/** The leases dnsmasq keeps: one line each, `<expiry> <mac> <ip> <hostname> <client-id>`. */
export interface Lease {
  expires: number;
  mac: string;
  ip: string;
  hostname: string | null;
}

export function parseLeases(text: string): Lease[] {
  return text
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[0]!))
    .map(([expires, mac, ip, hostname]) => ({ expires: Number(expires), mac: mac!.toLowerCase(), ip: ip!, hostname: hostname === "*" ? null : hostname! }));
}
