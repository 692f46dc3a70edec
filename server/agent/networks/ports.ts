/**
 * A guest's network cards on managed networks, as the host sees them: each is a port of
 * the network's bridge, a tap named from the guest and the card's position, with the one
 * address the agent chose for its MAC. dnsmasq hands out exactly that address (a host
 * entry per port), so the network's rules know the only source a guest may send from and
 * its name in the network's domain resolves from the first lease on.
 *
 * Pure: the manager keeps the ports of each network in its folder (ports.json) and
 * renders its rules and dnsmasq's host entries from them.
 */
import { createHash } from "node:crypto";
import ipaddr from "ipaddr.js";
import { GuesthouseError } from "../../domain/errors";
import type { Ipv4Plan } from "../../domain/network-plan";
import type { NicBandwidth } from "../../domain/types";

/** One NIC of a running (or starting) guest on a managed network. */
export interface Port {
  /** The tap device: TAP_PREFIX and a hash of the guest's id and the card's position. */
  tap: string;
  mac: string;
  /**
   * The address dnsmasq gives this MAC (a reservation's, or one the agent chose); null on
   * a network without DHCP, where the guest sets its own and only its MAC is checked.
   */
  ip: string | null;
  /** The guest's id, whose start made the port and whose stop takes it away. */
  guest: string;
  /** The host name in the network's domain (a DNS label). */
  name: string;
  /** Its card's bandwidth limits, policed at the tap (nft.ts). */
  bandwidth?: NicBandwidth;
}

/** A MAC → address (and name) the network's owner fixed. */
export interface Reservation {
  mac: string;
  ip: string;
  name: string;
}

/** Every tap the agent makes is named with this prefix (bridges have BRIDGE_PREFIX). */
export const TAP_PREFIX = "ght";

/** A NIC's tap: the prefix and a hash of guest and position, within the kernel's 15 characters. */
export const tapName = (guestId: string, index: number) => `${TAP_PREFIX}${createHash("sha256").update(`${guestId}/${index}`).digest("hex").slice(0, 12)}`;

/** `wanted`, or `wanted-2`, `wanted-3`, … : the first not in `taken`. */
export function uniqueLabel(wanted: string, taken: ReadonlySet<string>): string {
  if (!taken.has(wanted)) return wanted;
  for (let n = 2; ; n++) {
    const suffix = `-${n}`;
    const candidate = `${wanted.slice(0, 63 - suffix.length)}${suffix}`;
    if (!taken.has(candidate)) return candidate;
  }
}

const toInt = (text: string) => ipaddr.IPv4.parse(text).octets.reduce((n, o) => n * 256 + o, 0);
const fromInt = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

/**
 * The address for a new port: `preferred` (the MAC's last lease) when it is in the DHCP
 * range and free, else the range's first free address. (A reserved MAC has its
 * reservation's address and never comes here.)
 */
export function chooseAddress(plan: Ipv4Plan, taken: ReadonlySet<string>, preferred: string | null): string {
  if (!plan.dhcp) throw new GuesthouseError("invalid-input", "This network hands out no addresses (it has no DHCP range); give it one to put guests on it.");
  const [start, end] = [toInt(plan.dhcp.start), toInt(plan.dhcp.end)];
  if (preferred && ipaddr.IPv4.isValidFourPartDecimal(preferred) && toInt(preferred) >= start && toInt(preferred) <= end && !taken.has(preferred)) return preferred;
  for (let n = start; n <= end; n++) {
    const ip = fromInt(n);
    if (!taken.has(ip)) return ip;
  }
  throw new GuesthouseError("conflict", `Every address of the network's DHCP range (${plan.dhcp.start} to ${plan.dhcp.end}) is taken; widen the range or stop a guest.`);
}

/** dnsmasq's host entries (its dhcp-hostsfile, read again on SIGHUP): reservations, then ports. */
export function hostsFileOf(reservations: readonly Reservation[], ports: readonly Port[]): string {
  // A reserved card that runs is its port's line (which carries the reservation): one line per MAC.
  const running = new Set(ports.map((p) => p.mac));
  const lines = [...reservations.filter((r) => !running.has(r.mac.toLowerCase())), ...ports].map((h) => (h.ip ? `${h.mac},${h.ip},${h.name}` : `${h.mac},${h.name}`));
  return lines.length ? `${lines.join("\n")}\n` : "";
}

/**
 * A limit in Mbit/s as nftables' `limit rate over … kbytes/second burst …`: a policer that
 * drops what goes over (TCP slows down to it). The burst is a tenth of a second's worth, at
 * least 64 KiB, so a short burst passes whole.
 */
export function policedRate(mbit: number): string {
  const kbytes = mbit * 125;
  return `limit rate over ${kbytes} kbytes/second burst ${Math.max(64, Math.ceil(kbytes / 10))} kbytes`;
}
