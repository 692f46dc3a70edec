import Link from "next/link";
import { CreateNetworkForm, DeleteNetworkButton } from "@/components/network-forms";
import { canCreate, canManageBridgedNetworks } from "@/server/auth/policy";
import { listNetworks, suggestSubnet } from "@/server/web/networks";
import { requireUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

const KIND_LABEL = { user: "user-mode (built in)", nat: "NAT", isolated: "isolated", bridged: "bridged" } as const;

/** The networks of the teams this person sees, and a form for a new one in their team. */
export default async function NetworksPage() {
  const user = await requireUser();
  const [networks, suggested] = await Promise.all([listNetworks(user), suggestSubnet()]);
  return (
    <div className="space-y-6">
      <h1 className="text-2xl font-semibold">Networks</h1>
      <table className="card w-full overflow-hidden text-left text-sm" data-testid="networks">
        <thead className="bg-slate-100 text-xs uppercase tracking-wide text-slate-600">
          <tr>
            <th className="px-3 py-2">Name</th>
            <th className="px-3 py-2">Team</th>
            <th className="px-3 py-2">Kind</th>
            <th className="px-3 py-2">Subnet</th>
            <th className="px-3 py-2">Gateway</th>
            <th className="px-3 py-2">DHCP</th>
            <th className="px-3 py-2">Domain</th>
            <th className="px-3 py-2">Cards</th>
            <th className="px-3 py-2" />
          </tr>
        </thead>
        <tbody>
          {networks.map((n) => (
            <tr key={n.id} className="border-t border-slate-100" data-testid={`network-${n.name}`}>
              <td className="px-3 py-2 font-medium">
                {n.kind === "user" ? n.name : <Link href={`/networks/${n.id}`} className="text-indigo-700 hover:underline">{n.name}</Link>}
              </td>
              <td className="px-3 py-2">{n.team}</td>
              <td className="px-3 py-2">{KIND_LABEL[n.kind]}</td>
              <td className="px-3 py-2 font-mono">
                {n.subnet ?? (n.kind === "user" ? "10.0.2.0/24 per guest" : n.kind === "bridged" ? `the LAN on ${n.bridge}${n.vlans ? `, VLANs ${n.vlans}` : ""}` : "")}
                {n.ipv6 && <div data-testid={`ipv6-${n.name}`}>{n.ipv6}</div>}
              </td>
              <td className="px-3 py-2 font-mono">{n.gateway ?? ""}</td>
              <td className="px-3 py-2 font-mono">{n.dhcp ? `${n.dhcp.start} – ${n.dhcp.end}` : n.kind === "isolated" ? "none" : ""}</td>
              <td className="px-3 py-2">{n.domain ?? ""}</td>
              <td className="px-3 py-2">{n.nics.length}</td>
              <td className="px-3 py-2 text-right">{n.mayDelete && <DeleteNetworkButton id={n.id} name={n.name} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {canCreate(user, user.teamId) ? (
        <section className="card space-y-3 p-4">
          <h2 className="font-semibold">New network in your team</h2>
          <p className="text-sm text-slate-600">
            A Linux bridge on the host with DHCP and DNS for its guests (they find each other as <span className="font-mono">name.domain</span>); NAT networks reach out through the host. The subnet must be private and clear of every other network and route of the host.
          </p>
          <CreateNetworkForm suggestedSubnet={suggested} mayBridge={canManageBridgedNetworks(user)} />
        </section>
      ) : (
        <p className="text-sm text-slate-600">Your role in this team makes no networks.</p>
      )}
    </div>
  );
}
