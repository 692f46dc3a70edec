/**
 * A managed network's IPv4 plan, checked: its subnet (a private range, /16 to /29), its
 * gateway (the bridge's address: the subnet's first host), its DHCP range (inside the
 * subnet, clear of the gateway), and whether it clashes with another network or a route
 * of the host. Addresses are read with ipaddr.js; everything here is pure, so the web (to
 * refuse) and the agent (to build) check the same way.
 */
import { createHash } from "node:crypto";
import ipaddr from "ipaddr.js";
import { GuesthouseError } from "./errors";

export interface Ipv4Plan {
  /** The subnet in CIDR form, as normalized: "10.77.0.0/24". */
  subnet: string;
  prefix: number;
  /** The bridge's own address, the guests' router and DNS server. */
  gateway: string;
  netmask: string;
  /** The addresses DHCP hands out, both ends included; null: no DHCP (an isolated network may go without). */
  dhcp: { start: string; end: string } | null;
}

const toInt = (a: ipaddr.IPv4) => a.octets.reduce((n, o) => n * 256 + o, 0);
const fromInt = (n: number) => ipaddr.IPv4.parse([24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join("."));

function invalid(message: string): GuesthouseError {
  return new GuesthouseError("invalid-input", message);
}

/** The subnet a person wrote ("10.77.0.0/24"), as its first and last address; refused unless private and /16 to /29. */
export function parseSubnet(text: string): { first: number; last: number; prefix: number; cidr: string } {
  if (typeof text !== "string" || !ipaddr.IPv4.isValidCIDRFourPartDecimal(text.trim())) {
    throw invalid(`"${String(text).slice(0, 40)}" is not an IPv4 subnet; write it as 10.77.0.0/24.`);
  }
  const [address, prefix] = ipaddr.IPv4.parseCIDR(text.trim());
  if (prefix < 16 || prefix > 29) throw invalid(`A network's subnet is /16 to /29 (${text.trim()} is /${prefix}).`);
  const network = ipaddr.IPv4.networkAddressFromCIDR(text.trim());
  if (toInt(network) !== toInt(address)) {
    throw invalid(`${text.trim()} has host bits set: the subnet is ${network.toString()}/${prefix}.`);
  }
  if (network.range() !== "private") throw invalid(`${text.trim()} is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16).`);
  const first = toInt(network);
  return { first, last: first + 2 ** (32 - prefix) - 1, prefix, cidr: `${network.toString()}/${prefix}` };
}

/**
 * The plan of a subnet, with a DHCP range as given (both ends inside the subnet, in order,
 * clear of the gateway and of the network and broadcast addresses) or, `"auto"`, the upper
 * half of its hosts.
 */
export function planIpv4(subnet: string, dhcp: { start: string; end: string } | "auto" | null): Ipv4Plan {
  const net = parseSubnet(subnet);
  const gateway = net.first + 1;
  const lastHost = net.last - 1;
  let range: Ipv4Plan["dhcp"] = null;
  if (dhcp === "auto") {
    const hosts = lastHost - gateway;
    range = { start: fromInt(gateway + 1 + Math.floor(hosts / 2)).toString(), end: fromInt(lastHost).toString() };
  } else if (dhcp) {
    const end = (name: string, text: string) => {
      if (typeof text !== "string" || !ipaddr.IPv4.isValidFourPartDecimal(text)) throw invalid(`The DHCP range's ${name} "${String(text).slice(0, 40)}" is not an IPv4 address.`);
      const n = toInt(ipaddr.IPv4.parse(text));
      if (n <= gateway || n > lastHost) throw invalid(`The DHCP range's ${name} ${text} is outside ${net.cidr}'s hosts after the gateway (${fromInt(gateway + 1)} to ${fromInt(lastHost)}).`);
      return n;
    };
    const [start, stop] = [end("start", dhcp.start), end("end", dhcp.end)];
    if (start > stop) throw invalid(`The DHCP range starts after it ends (${dhcp.start} > ${dhcp.end}).`);
    range = { start: fromInt(start).toString(), end: fromInt(stop).toString() };
  }
  return { subnet: net.cidr, prefix: net.prefix, gateway: fromInt(gateway).toString(), netmask: ipaddr.IPv4.subnetMaskFromPrefixLength(net.prefix).toString(), dhcp: range };
}

/** Whether two IPv4 subnets (CIDR) share any address. */
export function overlaps(a: string, b: string): boolean {
  const [x, y] = [cidrRange(a), cidrRange(b)];
  return x.first <= y.last && y.first <= x.last;
}

function cidrRange(cidr: string): { first: number; last: number } {
  const [address, prefix] = ipaddr.IPv4.parseCIDR(cidr);
  const first = toInt(ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${prefix}`));
  return { first, last: first + 2 ** (32 - prefix) - 1 };
}

/** A route of the host, as `ip -j -4 route` lists it ("default" is left out: it overlaps everything by design). */
export interface HostRoute {
  dst: string;
  dev?: string;
}

/**
 * The first thing a new subnet would clash with: another network's subnet, or a route of
 * the host (a LAN, a VPN, a container bridge), named so a person can see why; null when clear.
 */
export function clashOf(subnet: string, others: Array<{ name: string; subnet: string }>, routes: HostRoute[]): string | null {
  for (const other of others) if (overlaps(subnet, other.subnet)) return `the network ${other.name} (${other.subnet})`;
  for (const route of routes) {
    if (route.dst === "default") continue;
    const dst = route.dst.includes("/") ? route.dst : `${route.dst}/32`;
    if (ipaddr.IPv4.isValidCIDR(dst) && overlaps(subnet, dst)) return `the host's route to ${route.dst}${route.dev ? ` (on ${route.dev})` : ""}`;
  }
  return null;
}

const VLAN_MIN = 1;
const VLAN_MAX = 4094;

/** An 802.1Q VLAN id for a NIC on a VLAN-filtering bridge: 1 to 4094. */
export function parseVlan(value: unknown): number {
  const n = typeof value === "string" && /^\d{1,4}$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < VLAN_MIN || n > VLAN_MAX) {
    throw invalid(`A VLAN id is a whole number from ${VLAN_MIN} to ${VLAN_MAX}.`);
  }
  return n;
}

/**
 * The VLANs an admin lets a bridged network's cards use, as written ("10, 20, 100-199"):
 * each id or range 1 to 4094, in order, merged; "" is none (the cards go untagged). The
 * result is the same list written the one way (`formatVlanList`).
 */
export function parseVlanList(text: string): Array<[number, number]> {
  if (typeof text !== "string" || text.length > 500) throw invalid("A list of VLANs is ids and ranges such as 10, 20, 100-199.");
  const ranges: Array<[number, number]> = [];
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d{1,4})(?:\s*-\s*(\d{1,4}))?$/.exec(part);
    if (!m) throw invalid(`"${part.slice(0, 20)}" is no VLAN id or range; write ids and ranges such as 10, 20, 100-199.`);
    const [first, last] = [parseVlan(m[1]), parseVlan(m[2] ?? m[1])];
    if (first > last) throw invalid(`The VLAN range ${part} starts after it ends.`);
    ranges.push([first, last]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const r of ranges) {
    const top = merged[merged.length - 1];
    if (top && r[0] <= top[1] + 1) top[1] = Math.max(top[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

export const formatVlanList = (ranges: ReadonlyArray<readonly [number, number]>): string => ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(",");

export const vlanInList = (vid: number, ranges: ReadonlyArray<readonly [number, number]>): boolean => ranges.some(([a, b]) => a <= vid && vid <= b);

/**
 * An existing host bridge an admin names for a bridged network (`br0`): a Linux interface
 * name (1 to 15 letters, digits, '.', '_' and '-', starting with a letter or digit), never
 * one of the agent's own bridges (BRIDGE_PREFIX "gh-").
 */
export function parseHostBridge(name: unknown): string {
  if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/.test(name)) {
    throw invalid(`"${String(name).slice(0, 20)}" is not an interface name: a host bridge is named with 1 to 15 letters, digits, '.', '_' and '-', such as br0.`);
  }
  if (name.startsWith("gh-")) throw invalid(`${name} is one of Guesthouse's own bridges (gh-…): name a bridge of the host's, such as br0.`);
  return name;
}

/**
 * A network's IPv6 plan (NAT and isolated networks that have IPv6): a unique local /64
 * (RFC 4193: fd00::/8, then 40 bits and a 16-bit subnet id, here all from a hash of the
 * network's id, so a network keeps its prefix and two networks' clash only by a 2^-56
 * chance), the bridge's address its ::1. Guests configure themselves (SLAAC) from the
 * router advertisements dnsmasq sends.
 */
export interface Ipv6Plan {
  /** "fd12:3456:789a:bcde::/64". */
  prefix: string;
  /** "fd12:3456:789a:bcde::1": the bridge's, the guests' router (NAT) and DNS server. */
  gateway: string;
}

export function planIpv6(networkId: string): Ipv6Plan {
  const hex = createHash("sha256").update(`ipv6/${networkId}`).digest("hex");
  const groups = [`fd${hex.slice(0, 2)}`, hex.slice(2, 6), hex.slice(6, 10), hex.slice(10, 14)].map((g) => g.replace(/^0+(?=.)/, ""));
  const base = groups.join(":");
  return { prefix: `${base}::/64`, gateway: `${base}::1` };
}

/** A NIC's MAC: refused when multicast (the first octet's lowest bit) or all zeros, which no NIC may have. */
export function assertUnicastMac(mac: string): void {
  const first = parseInt(mac.slice(0, 2), 16);
  if (Number.isNaN(first) || first & 1) throw invalid(`${mac} is a multicast address; a NIC's MAC has the first octet's lowest bit clear (52:54:00:… is QEMU's).`);
  if (/^(00:){5}00$/.test(mac)) throw invalid("00:00:00:00:00:00 is no MAC a NIC may have.");
}
