/**
 * A network card's addresses as the host sees it use them on a managed network (its DHCP
 * lease, the bridge's neighbours; no agent in the guest), for the guest's page. The page
 * reloads when they change (its event stream names the guest), so this stays a server component.
 */
export function NicAddresses({ ipv4, ipv6, running }: { ipv4: string[]; ipv6: string[]; running: boolean }) {
  if (ipv4.length + ipv6.length === 0) {
    return (
      <span data-testid="nic-addresses" className="text-slate-500">
        {running ? "no address seen yet" : "no address (not running)"}
      </span>
    );
  }
  return (
    <span data-testid="nic-addresses" className="inline-flex flex-wrap gap-1">
      {[...ipv4, ...ipv6].map((ip) => (
        <span key={ip} data-testid={ip.includes(":") ? "nic-ipv6" : "nic-ipv4"} className="rounded bg-emerald-50 px-1.5 font-mono text-xs text-emerald-800 ring-1 ring-emerald-200">
          {ip}
        </span>
      ))}
    </span>
  );
}
