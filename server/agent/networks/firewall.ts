/**
 * A managed network's port forwards and firewall rules as nftables rules, for nft.ts to
 * put in the network's tables (see server/domain/network-rules.ts for what they mean).
 *
 *   inet table, nat prerouting and output: a forwarded port on the host's forward
 *     address goes to the card's address; from outside and other guests (prerouting) and
 *     from the host itself (output; the test button connects to the gateway's address).
 *   inet table, nat postrouting: a guest reaching a forward of its own network through
 *     the host (hairpin) is masqueraded, so the answer comes back the same way.
 *   inet table, filter forward: answers always pass; then the rules in order (each
 *     counted, tagged "rule:<id>"); then forwarded connections pass; then the defaults.
 *   inet table, filter output (chain from_host): deny rules towards the guests again, for
 *     what the host itself sends (its own connections never pass the forward chain).
 *   bridge table, filter forward: deny rules again, for frames between the guests'
 *     ports (no connection state there).
 * A rule or forward naming a card that is not plugged (its guest is stopped) is left
 * out until it is.
 */
import type { Ipv4Plan } from "../../domain/network-plan";
import type { FirewallRule, NetworkFirewall, NetworkForward } from "../../domain/network-rules";
import type { Port } from "./ports";

/** A rule's comment: how its counters are found again. */
export const ruleTag = (id: string) => `rule:${id}`;

/** The match of a rule's protocol and ports; the ports are the guest's (in) or the far side's (out). */
function l4(rule: FirewallRule): string {
  const ports = rule.ports ? (rule.ports.from === rule.ports.to ? `${rule.ports.from}` : `${rule.ports.from}-${rule.ports.to}`) : null;
  switch (rule.protocol) {
    case "any":
      return "";
    case "icmp":
      return " meta l4proto icmp";
    default:
      return ports ? ` ${rule.protocol} dport ${ports}` : ` meta l4proto ${rule.protocol}`;
  }
}

/** The address of the card a rule or forward names, or null when it is not plugged. */
function portOf(ports: readonly Port[], mac: string): Port | null {
  return ports.find((p) => p.mac === mac.toLowerCase()) ?? null;
}

/** Rules of the inet forward chain, after the spoofing check: state, forwards, rules, defaults (NAT networks). */
export function forwardChainRules(bridge: string, fw: NetworkFirewall, ports: readonly Port[]): string[] {
  const br = JSON.stringify(bridge);
  const lines = [`iifname ${br} oifname ${br} accept`, `oifname ${br} ct state established,related accept`, `iifname ${br} ct state established,related accept`];
  for (const rule of fw.rules) {
    const verdict = rule.action === "allow" ? "accept" : "drop";
    const port = rule.mac ? portOf(ports, rule.mac) : null;
    if (rule.mac && !port?.ip) continue;
    const guest = port?.ip ?? null;
    const far = rule.cidr;
    const match =
      rule.direction === "in"
        ? `oifname ${br}${guest ? ` ip daddr ${guest}` : ""}${far ? ` ip saddr ${far}` : ""}`
        : `iifname ${br}${guest ? ` ip saddr ${guest}` : ""}${far ? ` ip daddr ${far}` : ""}`;
    lines.push(`${match}${l4(rule)} counter ${verdict} comment "${ruleTag(rule.id)}"`);
  }
  // A forwarded connection is asked for by its forward, whatever the default in; the rules above still apply to it.
  lines.push(`oifname ${br} ct status dnat counter accept comment "forwarded"`);
  lines.push(`iifname ${br} counter ${fw.defaultOut === "allow" ? "accept" : "drop"} comment "default out"`);
  lines.push(`oifname ${br} counter ${fw.defaultIn === "allow" ? "accept" : "drop"} comment "default in"`);
  return lines;
}

/**
 * Deny rules towards the guests, for what the host itself sends them (its own connections,
 * and those it forwards from its own addresses): the output chain, which the forward chain
 * never sees. Matched by the destination (the subnet, or the card's address), not by the
 * outgoing interface: a connection to the host's own address that a forward rewrites is
 * still on its way out of `lo` when this chain sees it. Only denials: by default the host
 * reaches its guests, as with libvirt's NAT.
 */
export function hostOutputRules(subnet: string, fw: NetworkFirewall, ports: readonly Port[]): string[] {
  const lines: string[] = [];
  for (const rule of fw.rules) {
    if (rule.action !== "deny" || rule.direction !== "in") continue;
    const port = rule.mac ? portOf(ports, rule.mac) : null;
    if (rule.mac && !port?.ip) continue;
    lines.push(`ip daddr ${port?.ip ?? subnet}${rule.cidr ? ` ip saddr ${rule.cidr}` : ""}${l4(rule)} counter drop comment "${ruleTag(rule.id)}"`);
  }
  return lines;
}

/** Deny rules between the guests' ports, in the bridge table's forward chain (stateless). */
export function bridgeDenyRules(fw: NetworkFirewall, ports: readonly Port[]): string[] {
  const lines: string[] = [];
  for (const rule of fw.rules) {
    if (rule.action !== "deny") continue;
    const port = rule.mac ? portOf(ports, rule.mac) : null;
    if (rule.mac && !port) continue;
    const side = rule.direction === "in" ? "oifname" : "iifname";
    const taps = port ? JSON.stringify(port.tap) : ports.length ? `{ ${ports.map((p) => JSON.stringify(p.tap)).join(", ")} }` : null;
    if (!taps) continue;
    const far = rule.cidr ? ` ip ${rule.direction === "in" ? "saddr" : "daddr"} ${rule.cidr}` : "";
    // A match on addresses or ports needs IPv4; "any" without them drops every frame of the port that way.
    const ip = far || rule.protocol !== "any" ? " ether type ip" : "";
    lines.push(`${side} ${taps}${ip}${far}${l4(rule)} counter drop comment "${ruleTag(rule.id)}"`);
  }
  return lines;
}

/**
 * The nat chains' rules of the forwards whose cards are plugged, listening where
 * user-mode forwards do (`address`): 0.0.0.0, every address of the host; one address,
 * that one; 127.0.0.1 ("this machine only"), the network's gateway address, from the
 * host itself and the network's guests, never from outside. Plus the hairpin masquerade.
 */
export function forwardNatRules(plan: Ipv4Plan, bridge: string, forwards: readonly NetworkForward[], ports: readonly Port[], address: string): { dnat: string[]; output: string[]; hairpin: string[] } {
  const to = address === "0.0.0.0" ? "fib daddr type local" : address.startsWith("127.") ? `ip daddr ${plan.gateway}` : `ip daddr ${address}`;
  // From outside only where forwards are not this machine's alone.
  const from = address.startsWith("127.") ? `iifname ${JSON.stringify(bridge)} ` : "";
  const dnat: string[] = [];
  const output: string[] = [];
  for (const f of forwards) {
    const port = portOf(ports, f.mac);
    if (!port?.ip) continue;
    const host = f.hostPortEnd !== undefined && f.hostPortEnd !== f.hostPort ? `${f.hostPort}-${f.hostPortEnd}` : `${f.hostPort}`;
    // A range keeps its port numbers (network-rules.ts): the address alone is rewritten.
    const target = f.hostPortEnd !== undefined && f.hostPortEnd !== f.hostPort ? port.ip : `${port.ip}:${f.guestPort}`;
    const rule = `${to} ${f.protocol} dport ${host} counter dnat ip to ${target} comment "forward ${f.protocol}/${host}"`;
    dnat.push(`${from}${rule}`);
    output.push(rule);
  }
  return { dnat, output, hairpin: dnat.length ? [`ip saddr ${plan.subnet} ip daddr ${plan.subnet} ct status dnat counter masquerade comment "hairpin"`] : [] };
}
