/**
 * The network doctor: what on this host would stop guests' managed networks from working,
 * each with the exact fix. It reads (never changes) the host: IPv4 forwarding (and IPv6
 * forwarding, once a network has IPv6: its NAT guests reach nothing beyond without), the tun
 * device, nftables in the kernel, the agent's CAP_NET_ADMIN, the tools it runs, and other
 * firewalls' forward chains whose DROP policy would eat guests' traffic (Docker,
 * firewalld, ufw and friends, as nftables shows them; ours are the `guesthouse_` tables).
 * `run` runs a command and returns its output, so a test can point it into a namespace.
 */
import { BRIDGE_PREFIX, tableName } from "./nft";

export interface Finding {
  /** A stable name, for pages and tests. */
  id: "ip-forward" | "ip6-forward" | "tun" | "module" | "cap-net-admin" | "tool" | "foreign-drop";
  problem: string;
  fix: string;
}

export interface DoctorHost {
  run(command: string, args: string[]): Promise<string>;
  readFile(path: string): Promise<string | null>;
}

const TOOLS: Array<[string, string]> = [
  ["ip", "iproute2"],
  ["nft", "nftables"],
  ["dnsmasq", "dnsmasq-base"],
];
const CAP_NET_ADMIN = 12;
const OURS = tableName("");

/** `networks.ipv6`: whether any managed network has IPv6 (its forwarding is looked at only then). */
export async function diagnose(host: DoctorHost, networks: { ipv6: boolean } = { ipv6: false }): Promise<Finding[]> {
  const findings: Finding[] = [];
  const missingTools: string[] = [];
  for (const [tool, pkg] of TOOLS) {
    const found = await host.run("sh", ["-c", `command -v ${tool}`]).then(() => true, () => false);
    if (!found) missingTools.push(pkg);
  }
  if (missingTools.length) {
    findings.push({ id: "tool", problem: `The agent cannot build networks without ${missingTools.join(", ")}.`, fix: `apt-get install ${missingTools.join(" ")}` });
  }
  if ((await host.readFile("/proc/sys/net/ipv4/ip_forward"))?.trim() !== "1") {
    findings.push({
      id: "ip-forward",
      problem: "IPv4 forwarding is off: guests of NAT networks cannot reach beyond the host.",
      fix: "sysctl -w net.ipv4.ip_forward=1 && echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-guesthouse.conf",
    });
  }
  if (networks.ipv6 && (await host.readFile("/proc/sys/net/ipv6/conf/all/forwarding"))?.trim() !== "1") {
    findings.push({
      id: "ip6-forward",
      problem: "IPv6 forwarding is off: guests of NAT networks with IPv6 reach the host over IPv6, nothing beyond.",
      fix: "sysctl -w net.ipv6.conf.all.forwarding=1 && echo net.ipv6.conf.all.forwarding=1 >> /etc/sysctl.d/90-guesthouse.conf",
    });
  }
  if (!(await host.run("test", ["-c", "/dev/net/tun"]).then(() => true, () => false))) {
    findings.push({ id: "tun", problem: "There is no /dev/net/tun: guests' network cards cannot be made.", fix: "modprobe tun" });
  }
  const caps = /^CapEff:\s*([0-9a-f]+)$/m.exec((await host.readFile("/proc/self/status")) ?? "")?.[1];
  if (!caps || (BigInt(`0x${caps}`) & (1n << BigInt(CAP_NET_ADMIN))) === 0n) {
    findings.push({ id: "cap-net-admin", problem: "The agent lacks CAP_NET_ADMIN: it cannot make bridges, taps or rules.", fix: "Run the agent as root (the quick start does), or grant it: AmbientCapabilities=CAP_NET_ADMIN in its systemd unit." });
  }
  findings.push(...(await foreignDrops(host, !missingTools.includes("nftables"))));
  return findings;
}

interface NftObject {
  chain?: { family: string; table: string; name: string; hook?: string; policy?: string };
}

/**
 * Forward chains of other tables whose policy drops what no rule accepted: guests' traffic,
 * unless let through. (Kernel modules are found out by what works, not by name: built into
 * the kernel they show nowhere. An nft that cannot list the ruleset means no nf_tables.)
 */
async function foreignDrops(host: DoctorHost, nftThere: boolean): Promise<Finding[]> {
  if (!nftThere) return []; // said above
  let text: string;
  try {
    text = await host.run("nft", ["-j", "list", "ruleset"]);
  } catch (err) {
    return [{ id: "module", problem: `nftables does not work in this kernel (${String((err as Error).message).split("\n").find((l) => /Error|not supported/i.test(l)) ?? "nft list ruleset failed"}).`, fix: "modprobe nf_tables && echo nf_tables > /etc/modules-load.d/guesthouse.conf" }];
  }
  const objects = (JSON.parse(text) as { nftables: NftObject[] }).nftables;
  return objects
    .flatMap((o) => (o.chain && o.chain.hook === "forward" && o.chain.policy === "drop" && !o.chain.table.startsWith(OURS) ? [o.chain] : []))
    .map((c) => ({
      id: "foreign-drop" as const,
      problem: `The forward chain ${c.name} of table ${c.family} ${c.table} drops what it does not accept${whose(c.table)}: it will eat guests' traffic to and from the world.`,
      fix: `nft insert rule ${c.family} ${c.table} ${c.name} iifname "${BRIDGE_PREFIX}*" accept && nft insert rule ${c.family} ${c.table} ${c.name} oifname "${BRIDGE_PREFIX}*" accept${c.table === "filter" && c.name === "FORWARD" ? ` (with Docker's iptables: iptables -I DOCKER-USER -i ${BRIDGE_PREFIX}+ -j ACCEPT; iptables -I DOCKER-USER -o ${BRIDGE_PREFIX}+ -j ACCEPT)` : ""}`,
    }));
}

function whose(table: string): string {
  if (table === "firewalld") return " (firewalld)";
  if (table === "filter") return " (iptables: Docker, ufw or a hand-written firewall)";
  return "";
}
