"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { makeNetwork, removeNetwork } from "@/app/actions/networks";
import { ActionButton, SubmitRow } from "./action-button";
import { useFormAction } from "./use-form-action";

/**
 * A new managed network of the team: NAT (out to the world through the host) or isolated
 * (its guests and the host only), its subnet, DHCP range, DNS domain and whether it has
 * IPv6; or, for admins only (`mayBridge`), bridged: a bridge of the host and the VLANs
 * the team's cards may use on it.
 */
export function CreateNetworkForm({ suggestedSubnet, mayBridge = false }: { suggestedSubnet: string; mayBridge?: boolean }) {
  const router = useRouter();
  const [kind, setKind] = useState<"nat" | "isolated" | "bridged">("nat");
  const [dhcp, setDhcp] = useState<"auto" | "none" | "range">("auto");
  const { onSubmit, error, pending } = useFormAction(
    (form) =>
      makeNetwork(
        kind === "bridged"
          ? { name: String(form.get("name") ?? ""), kind, bridge: String(form.get("bridge") ?? ""), vlans: String(form.get("vlans") ?? ""), description: String(form.get("description") ?? "") }
          : {
              name: String(form.get("name") ?? ""),
              kind,
              subnet: String(form.get("subnet") ?? ""),
              dhcp: dhcp === "range" ? { start: String(form.get("dhcpStart") ?? ""), end: String(form.get("dhcpEnd") ?? "") } : dhcp,
              domain: String(form.get("domain") ?? ""),
              ipv6: form.get("ipv6") === "on",
              description: String(form.get("description") ?? ""),
            },
      ),
    (made) => router.push(`/networks/${made.id}`),
  );
  return (
    <form onSubmit={onSubmit} className="space-y-3" aria-label="New network">
      <div className="grid gap-3 sm:grid-cols-3">
        <label className="label">
          Name
          <input name="name" className="field" required placeholder="lab" pattern="[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?" title="1 to 32 lowercase letters, digits and '-'" />
        </label>
        <label className="label">
          Kind
          <select name="kind" className="field" value={kind} onChange={(e) => setKind(e.target.value as "nat" | "isolated" | "bridged")}>
            <option value="nat">NAT: guests reach out through this host</option>
            <option value="isolated">Isolated: its guests and the host only</option>
            {mayBridge && <option value="bridged">Bridged: guests on a bridge of the host, on its LAN (admins)</option>}
          </select>
        </label>
        {kind === "bridged" ? (
          <>
            <label className="label">
              Host bridge
              <input name="bridge" className="field font-mono" required placeholder="br0" maxLength={15} title="An existing bridge of the host, with the LAN's interface on it" />
            </label>
            <label className="label">
              VLANs its cards may use
              <input name="vlans" className="field font-mono" placeholder="none (untagged only); or 10, 20, 100-199" title="The bridge must filter VLANs (vlan_filtering 1) for a card to have one" />
            </label>
          </>
        ) : (
          <>
            <label className="label">
              Subnet
              <input name="subnet" className="field" required defaultValue={suggestedSubnet} placeholder="10.77.0.0/24" />
            </label>
            <label className="label">
              DHCP
              <select className="field" value={dhcp} onChange={(e) => setDhcp(e.target.value as "auto" | "none" | "range")}>
                <option value="auto">Upper half of the subnet</option>
                <option value="range">A range I choose</option>
                {kind === "isolated" && <option value="none">None (guests set their own addresses)</option>}
              </select>
            </label>
            {dhcp === "range" && (
              <>
                <label className="label">
                  First address
                  <input name="dhcpStart" className="field" required placeholder="10.77.0.100" />
                </label>
                <label className="label">
                  Last address
                  <input name="dhcpEnd" className="field" required placeholder="10.77.0.200" />
                </label>
              </>
            )}
            <label className="label">
              DNS domain
              <input name="domain" className="field" required defaultValue="lab.internal" placeholder="lab.internal" />
            </label>
            <label className="flex items-center gap-2 text-sm" title="A unique local /64 for SLAAC: router advertisements from this host">
              <input type="checkbox" name="ipv6" />
              IPv6 too (addresses by SLAAC)
            </label>
          </>
        )}
      </div>
      <label className="label">
        Description
        <input name="description" className="field" maxLength={2000} />
      </label>
      <SubmitRow error={error} pending={pending} label="Create network" busy="Creating…" />
    </form>
  );
}

export function DeleteNetworkButton({ id, name, goBack = false }: { id: string; name: string; goBack?: boolean }) {
  const router = useRouter();
  return (
    <ActionButton
      label="Delete"
      busy="Deleting…"
      danger
      testId={`delete-network-${name}`}
      question={() => `Delete the network ${name}? Its bridge, rules, DHCP server and leases go from the host.`}
      run={() => removeNetwork(id)}
      onDone={() => (goBack ? router.push("/networks") : router.refresh())}
    />
  );
}
