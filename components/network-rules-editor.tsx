"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import { reserveAddress, saveNetworkRules, setLink, testForward } from "@/app/actions/networks";
import type { FirewallRule, NetworkFirewall, NetworkForward } from "@/server/domain/network-rules";
import { ActionButton } from "./action-button";

type Card = { guestId: string; guest: string; mac: string; position: number };

const newRuleId = () => Math.random().toString(36).slice(2, 10);
const num = (text: string) => (text.trim() === "" ? NaN : Number(text));

/**
 * A network's port forwards and firewall, edited together and saved as one (with the
 * version read, so a change made meanwhile is not overwritten); each rule shows what it
 * matched so far, each forward has a test from the host.
 */
export function NetworkRulesEditor(props: {
  networkId: string;
  nat: boolean;
  cards: Card[];
  initial: { forwards: NetworkForward[]; firewall: NetworkFirewall };
  counters: Record<string, number> | null;
  version: string;
  forwardRange: string | null;
}) {
  const router = useRouter();
  const [forwards, setForwards] = useState<NetworkForward[]>(props.initial.forwards);
  const [firewall, setFirewall] = useState<NetworkFirewall>(props.initial.firewall);
  const [error, setError] = useState<string | null>(null);
  const [tested, setTested] = useState<Record<string, string>>({});
  const [pending, start] = useTransition();
  const cardLabel = (mac: string) => props.cards.find((c) => c.mac === mac)?.guest ?? mac;
  const patchRule = (i: number, patch: Partial<FirewallRule>) => setFirewall({ ...firewall, rules: firewall.rules.map((r, j) => (j === i ? { ...r, ...patch } : r)) });
  const patchForward = (i: number, patch: Partial<NetworkForward>) => setForwards(forwards.map((f, j) => (j === i ? { ...f, ...patch } : f)));

  function save() {
    setError(null);
    start(async () => {
      const result = await saveNetworkRules(props.networkId, { forwards, firewall }, props.version);
      if (!result.ok) return setError(result.error);
      router.refresh();
    });
  }

  return (
    <div className="space-y-6">
      {props.nat && (
        <section className="card space-y-2 p-4" aria-label="Port forwards">
          <h2 className="font-semibold">Port forwards</h2>
          <p className="text-sm text-slate-600">
            A connection to this host on the port reaches the card (from outside, from the host and from other guests).{props.forwardRange ? ` Host ports ${props.forwardRange}.` : ""}
          </p>
          {forwards.map((f, i) => {
            const key = `${f.protocol}/${f.hostPort}`;
            return (
              <div key={i} className="flex flex-wrap items-end gap-2 text-sm" data-testid={`forward-${i}`}>
                <label className="label">Protocol
                  <select className="field" value={f.protocol} onChange={(e) => patchForward(i, { protocol: e.target.value as "tcp" | "udp" })}>
                    <option value="tcp">tcp</option>
                    <option value="udp">udp</option>
                  </select>
                </label>
                <label className="label">Host port
                  <input name={`forward${i}-host`} type="number" className="field w-28" value={f.hostPort} onChange={(e) => patchForward(i, { hostPort: num(e.target.value) })} />
                </label>
                <label className="label">to host port (range)
                  <input type="number" className="field w-28" value={f.hostPortEnd ?? ""} placeholder="one port" onChange={(e) => patchForward(i, { hostPortEnd: e.target.value ? num(e.target.value) : undefined })} />
                </label>
                <label className="label">Card
                  <select name={`forward${i}-card`} className="field" value={f.mac} onChange={(e) => patchForward(i, { mac: e.target.value })}>
                    {props.cards.map((c) => (
                      <option key={c.mac} value={c.mac}>{c.guest} ({c.mac})</option>
                    ))}
                  </select>
                </label>
                <label className="label">Guest port
                  <input name={`forward${i}-guest`} type="number" className="field w-28" value={f.guestPort} onChange={(e) => patchForward(i, { guestPort: num(e.target.value) })} />
                </label>
                <button type="button" className="btn mb-0.5" onClick={() => setForwards(forwards.filter((_, j) => j !== i))}>Remove</button>
                {f.protocol === "tcp" && props.initial.forwards.some((o) => o.protocol === f.protocol && o.hostPort === f.hostPort) && (
                  <button
                    type="button"
                    className="btn mb-0.5"
                    data-testid={`test-forward-${f.hostPort}`}
                    onClick={() =>
                      start(async () => {
                        const result = await testForward(props.networkId, f.protocol, f.hostPort);
                        setTested({ ...tested, [key]: result.ok ? result.data.message : result.error });
                      })
                    }
                  >
                    Test
                  </button>
                )}
                {tested[key] && <span className="w-full text-slate-700" data-testid={`forward-result-${f.hostPort}`}>{tested[key]}</span>}
              </div>
            );
          })}
          <button
            type="button"
            className="btn"
            disabled={props.cards.length === 0}
            onClick={() => setForwards([...forwards, { protocol: "tcp", hostPort: NaN, mac: props.cards[0]!.mac, guestPort: 22 }])}
          >
            Add port forward
          </button>
          {props.cards.length === 0 && <p className="text-xs text-slate-500">Put a guest&apos;s card on this network to forward ports to it.</p>}
        </section>
      )}

      <section className="card space-y-2 p-4" aria-label="Firewall">
        <h2 className="font-semibold">Firewall</h2>
        <p className="text-sm text-slate-600">
          Rules apply in order to what crosses the host (answers to allowed connections always pass); deny rules also apply between this network&apos;s guests. Every guest sends only with its own MAC and address.
        </p>
        <div className="flex gap-3 text-sm">
          <label className="label">Coming in, by default
            <select name="default-in" className="field" value={firewall.defaultIn} onChange={(e) => setFirewall({ ...firewall, defaultIn: e.target.value as "allow" | "deny" })}>
              <option value="deny">deny (only forwards and answers)</option>
              <option value="allow">allow</option>
            </select>
          </label>
          <label className="label">Going out, by default
            <select name="default-out" className="field" value={firewall.defaultOut} onChange={(e) => setFirewall({ ...firewall, defaultOut: e.target.value as "allow" | "deny" })}>
              <option value="allow">allow</option>
              <option value="deny">deny</option>
            </select>
          </label>
        </div>
        <table className="w-full text-left text-sm" data-testid="firewall-rules">
          <thead className="text-xs uppercase tracking-wide text-slate-600">
            <tr>
              <th>Action</th><th>Direction</th><th>Protocol</th><th>Ports</th><th>Far side</th><th>Card</th><th>Matched</th><th />
            </tr>
          </thead>
          <tbody>
            {firewall.rules.map((r, i) => (
              <tr key={r.id} className="border-t border-slate-100" data-testid={`rule-${i}`}>
                <td>
                  <select aria-label="Action" className="field" value={r.action} onChange={(e) => patchRule(i, { action: e.target.value as "allow" | "deny" })}>
                    <option value="deny">deny</option>
                    <option value="allow">allow</option>
                  </select>
                </td>
                <td>
                  <select aria-label="Direction" className="field" value={r.direction} onChange={(e) => patchRule(i, { direction: e.target.value as "in" | "out" })}>
                    <option value="in">in (to the guest)</option>
                    <option value="out">out (from it)</option>
                  </select>
                </td>
                <td>
                  <select aria-label="Protocol" className="field" value={r.protocol} onChange={(e) => patchRule(i, { protocol: e.target.value as FirewallRule["protocol"], ...(e.target.value === "tcp" || e.target.value === "udp" ? {} : { ports: null }) })}>
                    <option value="any">any</option>
                    <option value="tcp">tcp</option>
                    <option value="udp">udp</option>
                    <option value="icmp">icmp</option>
                  </select>
                </td>
                <td>
                  <input aria-label="Ports" className="field w-28" placeholder="any" disabled={r.protocol !== "tcp" && r.protocol !== "udp"}
                    defaultValue={r.ports ? (r.ports.from === r.ports.to ? `${r.ports.from}` : `${r.ports.from}-${r.ports.to}`) : ""}
                    onChange={(e) => {
                      const [from, to] = e.target.value.split("-").map((p) => num(p));
                      patchRule(i, { ports: e.target.value.trim() ? { from: from!, to: to ?? from! } : null });
                    }} />
                </td>
                <td>
                  <input aria-label="Far side" className="field w-36" placeholder="anywhere" defaultValue={r.cidr ?? ""} onChange={(e) => patchRule(i, { cidr: e.target.value.trim() || null })} />
                </td>
                <td>
                  <select aria-label="Card" className="field" value={r.mac ?? ""} onChange={(e) => patchRule(i, { mac: e.target.value || null })}>
                    <option value="">every card</option>
                    {props.cards.map((c) => (
                      <option key={c.mac} value={c.mac}>{cardLabel(c.mac)} ({c.mac})</option>
                    ))}
                  </select>
                </td>
                <td className="tabular-nums" data-testid={`rule-hits-${r.id}`}>{props.counters?.[r.id] ?? "–"}</td>
                <td>
                  <button type="button" className="btn" onClick={() => setFirewall({ ...firewall, rules: firewall.rules.filter((_, j) => j !== i) })}>Remove</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <button type="button" className="btn" onClick={() => setFirewall({ ...firewall, rules: [...firewall.rules, { id: newRuleId(), action: "deny", direction: "in", protocol: "tcp", ports: null, cidr: null, mac: null, comment: "" }] })}>
          Add rule
        </button>
      </section>

      {error && (
        <p role="alert" data-testid="form-error" className="text-sm text-red-700">
          {error}
        </p>
      )}
      <button type="button" className="btn btn-primary" disabled={pending} onClick={save}>
        {pending ? "Applying…" : "Apply forwards and firewall"}
      </button>
    </div>
  );
}

/** A card's link, set up or down while its guest runs (a pulled cable). */
export function LinkButtons({ guestId, position }: { guestId: string; position: number }) {
  return (
    <span className="space-x-1">
      <ActionButton label="Link down" busy="…" testId={`link-down-${guestId}-${position}`} run={() => setLink(guestId, position, false)} />
      <ActionButton label="Link up" busy="…" testId={`link-up-${guestId}-${position}`} run={() => setLink(guestId, position, true)} />
    </span>
  );
}

/** A card's fixed address and host name on its network: saved and applied at once. */
export function ReservationForm({ guestId, position, ip, name }: { guestId: string; position: number; ip: string | null; name: string | null }) {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [pending, start] = useTransition();
  return (
    <form
      className="mt-1 flex flex-wrap items-end gap-2"
      aria-label={`Reservation of card ${position + 1}`}
      onSubmit={(event) => {
        event.preventDefault();
        const form = new FormData(event.currentTarget);
        const text = (key: string) => String(form.get(key) ?? "").trim() || null;
        setError(null);
        start(async () => {
          const result = await reserveAddress(guestId, position, { ip: text("ip"), name: text("name") });
          if (!result.ok) return setError(result.error);
          router.refresh();
        });
      }}
    >
      <label className="label">Fixed address
        <input name="ip" className="field w-36 font-mono" placeholder="any" defaultValue={ip ?? ""} />
      </label>
      <label className="label">Host name
        <input name="name" className="field w-36" placeholder="the guest's name" defaultValue={name ?? ""} />
      </label>
      <button type="submit" className="btn mb-0.5" disabled={pending}>{pending ? "Saving…" : "Reserve"}</button>
      {error && <span role="alert" className="w-full text-sm text-red-700" data-testid={`reservation-error-${guestId}-${position}`}>{error}</span>}
    </form>
  );
}
