import Link from "next/link";
import { notFound } from "next/navigation";
import { DeleteNetworkButton } from "@/components/network-forms";
import { LinkButtons, NetworkRulesEditor, ReservationForm } from "@/components/network-rules-editor";
import { localHost } from "@/server/web/hosts";
import { agentFor } from "@/server/web/guests";
import { GuesthouseError } from "@/server/domain/errors";
import { loadNetwork, networkAddresses, networkCounters, type AddressRow } from "@/server/web/networks";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

/** One managed network: its plan, the cards on it, and its addresses (gateway, leased, free). */
export default async function NetworkPage({ params }: { params: Promise<{ id: string }> }) {
  const user = await requireUser();
  const { id } = await params;
  const network = await loadNetwork(user, id).catch((err: unknown) => {
    if (err instanceof GuesthouseError && err.code === "not-found") notFound();
    throw err;
  });
  // The agent's own networks have rules and addresses to show; a bridged one's are the LAN's.
  const managed = network.kind === "nat" || network.kind === "isolated";
  const [addresses, counters, hostInfo] = await Promise.all([
    managed ? networkAddresses(user, id).catch(() => null) : null,
    managed ? networkCounters(user, id).catch(() => null) : null,
    localHost().then((h) => agentFor(h).host()).catch(() => null),
  ]);
  return (
    <div className="space-y-6">
      <div className="flex items-center justify-between">
        <h1 className="text-2xl font-semibold">
          Network <span data-testid="network-name">{network.name}</span>
        </h1>
        {network.mayDelete && <DeleteNetworkButton id={network.id} name={network.name} goBack />}
      </div>
      <dl className="card grid gap-x-6 gap-y-2 p-4 text-sm sm:grid-cols-4" data-testid="network-plan">
        <dt className="text-slate-500">Team</dt>
        <dd>{network.team}</dd>
        <dt className="text-slate-500">Kind</dt>
        <dd>{network.kind === "nat" ? "NAT" : network.kind}</dd>
        {network.kind === "bridged" ? (
          <>
            <dt className="text-slate-500">Host bridge</dt>
            <dd className="font-mono">{network.bridge}</dd>
            <dt className="text-slate-500">VLANs for its cards</dt>
            <dd className="font-mono">{network.vlans || "none (untagged)"}</dd>
            <dt className="text-slate-500">Addresses</dt>
            <dd className="sm:col-span-3">the LAN&apos;s (its DHCP server and router); each card&apos;s MAC is checked here</dd>
          </>
        ) : (
          <>
            <dt className="text-slate-500">Subnet</dt>
            <dd className="font-mono">{network.subnet}</dd>
            <dt className="text-slate-500">Gateway</dt>
            <dd className="font-mono">{network.gateway}</dd>
            <dt className="text-slate-500">DHCP range</dt>
            <dd className="font-mono">{network.dhcp ? `${network.dhcp.start} – ${network.dhcp.end}` : "none"}</dd>
            <dt className="text-slate-500">DNS domain</dt>
            <dd>{network.domain}</dd>
            <dt className="text-slate-500">IPv6</dt>
            <dd className="font-mono" data-testid="network-ipv6">{network.ipv6 ? `${network.ipv6} (SLAAC; gateway ${network.ipv6.replace(/\/64$/, "")}1)` : "none"}</dd>
          </>
        )}
        {network.description && (
          <>
            <dt className="text-slate-500">Description</dt>
            <dd className="sm:col-span-3">{network.description}</dd>
          </>
        )}
      </dl>
      <section className="card space-y-2 p-4">
        <h2 className="font-semibold">Cards on it</h2>
        {network.nics.length === 0 ? (
          <p className="text-sm text-slate-600">No guest has a card on this network yet: choose it for a card on a guest&apos;s hardware page.</p>
        ) : (
          <ul className="text-sm" data-testid="network-nics">
            {network.nics.map((n) => (
              <li key={`${n.guestId}-${n.position}`}>
                <Link href={`/guests/${n.guestId}`} className="text-indigo-700 hover:underline">{n.guest}</Link>, card {n.position + 1} <span className="font-mono">{n.mac}</span>{n.vlan !== null && <> on VLAN {n.vlan}</>}{" "}
                {network.mayChange && <LinkButtons guestId={n.guestId} position={n.position} />}
                {n.reservedIp && <span className="ml-2 text-slate-600" data-testid={`reserved-${n.mac}`}>fixed {n.reservedIp}{n.hostName ? ` (${n.hostName})` : ""}</span>}
                {network.mayChange && network.kind !== "bridged" && <ReservationForm guestId={n.guestId} position={n.position} ip={n.reservedIp} name={n.hostName} />}
              </li>
            ))}
          </ul>
        )}
      </section>
      {managed && (network.mayChange ? (
        <NetworkRulesEditor
          networkId={network.id}
          nat={network.kind === "nat"}
          cards={network.nics}
          initial={{ forwards: network.forwards, firewall: network.firewall }}
          counters={counters ? Object.fromEntries(Object.entries(counters.rules).map(([rule, c]) => [rule, c.packets])) : null}
          version={network.updatedAt}
          forwardRange={hostInfo ? `${hostInfo.forwards.firstPort}–${hostInfo.forwards.lastPort}` : null}
        />
      ) : (
        <section className="card space-y-1 p-4 text-sm">
          <h2 className="font-semibold">Forwards and firewall</h2>
          <p>{network.forwards.length} port forward(s); {network.firewall.rules.length} rule(s); coming in: {network.firewall.defaultIn}, going out: {network.firewall.defaultOut}.</p>
        </section>
      ))}
      {managed && (
        <section className="card space-y-2 p-4">
          <h2 className="font-semibold">Addresses</h2>
          {!addresses ? (
            <p className="text-sm text-red-700">The host agent is not reachable: its leases are unknown.</p>
          ) : (
            <>
              <p className="text-sm text-slate-600" data-testid="network-free">
                {addresses.free} of {addresses.rangeSize} DHCP addresses free.
              </p>
              <AddressTable rows={addresses.rows} />
            </>
          )}
        </section>
      )}
    </div>
  );
}

function AddressTable({ rows }: { rows: AddressRow[] }) {
  return (
    <table className="w-full text-left text-sm" data-testid="network-addresses">
      <thead className="text-xs uppercase tracking-wide text-slate-600">
        <tr>
          <th className="py-1">Address</th>
          <th className="py-1">Use</th>
          <th className="py-1">MAC</th>
          <th className="py-1">Holder</th>
          <th className="py-1">Lease ends</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.ip} className="border-t border-slate-100">
            <td className="py-1 font-mono">{r.ip}</td>
            <td className="py-1">{r.use}</td>
            <td className="py-1 font-mono">{r.mac ?? ""}</td>
            <td className="py-1">{r.holder ?? ""}</td>
            <td className="py-1">{r.expires ? new Date(r.expires * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
