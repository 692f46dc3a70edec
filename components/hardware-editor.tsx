"use client";

import { useRouter } from "next/navigation";
import type { QuotaRefusal } from "@/server/domain/types";
import { AskForMore } from "./quota-ask";
import { useState, useTransition } from "react";
import { editHardware } from "@/app/actions/edit-hardware";
import {
  BOOT_DEVICES,
  DISK_BUSES,
  DISK_CACHES,
  DISPLAY_ADAPTERS,
  FIRMWARES,
  FORWARD_PROTOCOLS,
  MACHINE_TYPES,
  NIC_MODELS,
  RTC_BASES,
  type BootDevice,
} from "@/server/domain/types";
import { KEYBOARD_LAYOUT_NAMES, KEYBOARD_LAYOUTS, type KeyboardLayout } from "@/server/domain/keymaps";
import type { EditHardwareInput } from "@/server/domain/validation";

type Hw = EditHardwareInput;

const LABELS: Record<string, string> = {
  q35: "q35 (PCIe, AHCI)",
  pc: "pc (i440FX, IDE)",
  bios: "BIOS (SeaBIOS)",
  uefi: "UEFI (OVMF)",
  std: "Standard VGA",
  virtio: "virtio",
  qxl: "QXL",
  utc: "UTC",
  localtime: "Local time (Windows)",
  scsi: "SCSI (virtio-scsi)",
  ide: "IDE / SATA",
  e1000: "Intel e1000",
  rtl8139: "Realtek RTL8139",
  cdrom: "CD-ROM",
  disk: "Disk",
  network: "Network (PXE)",
};
const label = (v: string) => LABELS[v] ?? v;

/** A copy of `list` with item `i` patched. */
function patchAt<T>(list: T[], i: number, patch: Partial<T>): T[] {
  return list.map((item, j) => (j === i ? { ...item, ...patch } : item));
}

/** The hardware form: edits a copy of the definition and saves it in one action. */
export function HardwareEditor(props: {
  guestId: string;
  initial: Hw;
  diskLabels: string[];
  isos: string[];
  /** The host ports this host forwards to guests (null: its agent did not say). */
  forwardPorts: { address: string; firstPort: number; lastPort: number } | null;
  /**
   * The team's managed networks on the guest's host (a card may go on one instead of user
   * mode), each with its kind and, bridged, the VLANs its cards may use ("10,20,100-199").
   */
  networks: Array<{ name: string; kind: string; vlans: string }>;
}) {
  const { guestId, diskLabels, isos, forwardPorts } = props;
  const router = useRouter();
  const [hw, setHw] = useState<Hw>(props.initial);
  const [tagText, setTagText] = useState(props.initial.tags.join(", "));
  const [error, setError] = useState<string | null>(null);
  const [quota, setQuota] = useState<QuotaRefusal | null>(null);
  const [pending, startTransition] = useTransition();
  const set = (patch: Partial<Hw>) => setHw((h) => ({ ...h, ...patch }));
  const num = (v: string) => (v === "" ? Number.NaN : Number(v));

  function save(event: React.FormEvent) {
    event.preventDefault();
    setError(null);
    const tags = tagText.split(",").map((t) => t.trim()).filter(Boolean);
    startTransition(async () => {
      const result = await editHardware(guestId, { ...hw, tags });
      if (result.ok) router.push(`/guests/${guestId}`);
      else {
        setError(result.error);
        setQuota(result.quota ?? null);
      }
    });
  }

  function moveBoot(kind: BootDevice, by: -1 | 1) {
    const order = [...hw.bootOrder];
    const i = order.indexOf(kind);
    const j = i + by;
    if (i < 0 || j < 0 || j >= order.length) return;
    [order[i], order[j]] = [order[j]!, order[i]!];
    set({ bootOrder: order });
  }

  const unbooted = BOOT_DEVICES.filter((k) => !hw.bootOrder.includes(k));

  return (
    <form onSubmit={save} className="space-y-4">
      <Section title="Processors and memory">
        <Field label="vCPUs">
          <input name="vcpus" type="number" min={1} className="field" value={hw.vcpus} onChange={(e) => set({ vcpus: num(e.target.value) })} />
        </Field>
        <Field label="Sockets">
          <input name="sockets" type="number" min={1} className="field" value={hw.sockets} onChange={(e) => set({ sockets: num(e.target.value) })} />
        </Field>
        <Field label="Threads per core">
          <input name="threads" type="number" min={1} className="field" value={hw.threads} onChange={(e) => set({ threads: num(e.target.value) })} />
        </Field>
        <Field label="Memory (MiB)">
          <input name="memoryMiB" type="number" min={16} className="field" value={hw.memoryMiB} onChange={(e) => set({ memoryMiB: num(e.target.value) })} />
        </Field>
      </Section>

      <Section title="Machine">
        <Choice name="machine" label="Machine type" value={hw.machine} options={MACHINE_TYPES} onChange={(machine) => set({ machine })} />
        <Choice name="firmware" label="Firmware" value={hw.firmware} options={FIRMWARES} onChange={(firmware) => set({ firmware })} />
        <Choice name="display" label="Display adapter" value={hw.display} options={DISPLAY_ADAPTERS} onChange={(display) => set({ display })} />
        <Choice name="rtc" label="Clock (RTC)" value={hw.rtc} options={RTC_BASES} onChange={(rtc) => set({ rtc })} />
        <label className="label">
          Keyboard layout (for paste)
          <select
            name="keyboardLayout"
            className="field"
            value={hw.keyboardLayout ?? "us"}
            onChange={(e) => set({ keyboardLayout: e.target.value as KeyboardLayout })}
          >
            {KEYBOARD_LAYOUTS.map((l) => (
              <option key={l} value={l}>{KEYBOARD_LAYOUT_NAMES[l]}</option>
            ))}
          </select>
        </label>
        <label className="label col-span-2 flex items-center gap-2">
          <input name="serial" type="checkbox" checked={hw.serial} onChange={(e) => set({ serial: e.target.checked })} />
          Serial console (ttyS0, logged)
        </label>
      </Section>

      <Section title="Boot order">
        <ol className="col-span-2 space-y-1 text-sm" data-testid="boot-order">
          {hw.bootOrder.map((kind, i) => (
            <li key={kind} className="flex items-center gap-2">
              <span className="w-6 text-slate-500">{i + 1}.</span>
              <span className="w-40">{label(kind)}</span>
              <button type="button" className="btn" aria-label={`Move ${kind} up`} onClick={() => moveBoot(kind, -1)} disabled={i === 0}>↑</button>
              <button type="button" className="btn" aria-label={`Move ${kind} down`} onClick={() => moveBoot(kind, 1)} disabled={i === hw.bootOrder.length - 1}>↓</button>
              <button type="button" className="btn" onClick={() => set({ bootOrder: hw.bootOrder.filter((k) => k !== kind) })}>Don&apos;t boot</button>
            </li>
          ))}
          {unbooted.map((kind) => (
            <li key={kind} className="flex items-center gap-2 text-slate-500">
              <span className="w-6" />
              <span className="w-40">{label(kind)}</span>
              <button type="button" className="btn" onClick={() => set({ bootOrder: [...hw.bootOrder, kind] })}>Boot from it</button>
            </li>
          ))}
        </ol>
      </Section>

      <Section title="Disks">
        {hw.disks.length === 0 && <p className="col-span-2 text-sm text-slate-500">No disks.</p>}
        {hw.disks.map((d, i) => (
          <div key={d.id} className="col-span-2 grid grid-cols-[10rem_1fr_1fr_auto] items-end gap-3">
            <span className="pb-2 text-sm font-medium">Disk {i + 1}: {diskLabels[i]}</span>
            <Choice name={`disk${i}-bus`} label="Bus" value={d.bus} options={DISK_BUSES}
              onChange={(bus) => set({ disks: patchAt(hw.disks, i, { bus }) })} />
            <Choice name={`disk${i}-cache`} label="Cache" value={d.cache} options={DISK_CACHES}
              onChange={(cache) => set({ disks: patchAt(hw.disks, i, { cache }) })} />
            <label className="label flex items-center gap-2 pb-2">
              <input type="checkbox" checked={d.readOnly} onChange={(e) => set({ disks: patchAt(hw.disks, i, { readOnly: e.target.checked }) })} />
              Read-only
            </label>
          </div>
        ))}
      </Section>

      <Section title="CD-ROMs">
        {hw.cdroms.map((c, i) => (
          <div key={i} className="col-span-2 flex items-end gap-3">
            <Choice name={`cdrom${i}`} label={`CD-ROM ${i + 1}`} value={c.iso} options={isos.includes(c.iso) ? isos : [c.iso, ...isos]}
              onChange={(iso) => set({ cdroms: patchAt(hw.cdroms, i, { iso }) })} />
            <button type="button" className="btn btn-danger mb-0.5" onClick={() => set({ cdroms: hw.cdroms.filter((_, j) => j !== i) })}>Remove</button>
          </div>
        ))}
        <div className="col-span-2">
          <button type="button" className="btn" disabled={isos.length === 0} onClick={() => set({ cdroms: [...hw.cdroms, { iso: isos[0]! }] })}>
            Add CD-ROM
          </button>
        </div>
      </Section>

      <Section title="Network cards">
        {hw.nics.map((n, i) => {
          const managed = n.network !== undefined && n.network !== "user";
          const bridged = props.networks.find((net) => net.name === n.network && net.kind === "bridged");
          return (
          <div key={i} className="col-span-2 space-y-2 rounded-md border border-slate-200 p-3">
            <div className="flex items-end gap-3">
              <label className="label">
                Network
                <select name={`nic${i}-network`} className="field" value={n.network ?? "user"}
                  onChange={(e) => set({ nics: patchAt(hw.nics, i, e.target.value === "user" ? { network: "user", vlan: undefined, bandwidth: undefined } : { network: e.target.value, vlan: undefined, isolated: false, forwards: [] }) })}>
                  <option value="user">user mode</option>
                  {props.networks.map((net) => (
                    <option key={net.name} value={net.name}>{net.kind === "bridged" ? `${net.name} (bridged)` : net.name}</option>
                  ))}
                </select>
              </label>
              <Choice name={`nic${i}-model`} label={`Card ${i + 1} model`} value={n.model} options={NIC_MODELS}
                onChange={(model) => set({ nics: patchAt(hw.nics, i, { model }) })} />
              <label className="label">
                MAC
                <input name={`nic${i}-mac`} className="field font-mono" placeholder="generated" value={n.mac ?? ""}
                  onChange={(e) => set({ nics: patchAt(hw.nics, i, { mac: e.target.value.trim().toLowerCase() || undefined }) })} />
              </label>
              <button type="button" className="btn btn-danger mb-0.5" onClick={() => set({ nics: hw.nics.filter((_, j) => j !== i) })}>Remove</button>
            </div>
            {managed && (
              <div className="flex items-end gap-3 text-sm">
                <label className="label">
                  In, Mbit/s
                  <input name={`nic${i}-bandwidth-in`} type="number" min={1} max={100000} className="field w-28" placeholder="no limit" value={n.bandwidth?.inMbit ?? ""}
                    onChange={(e) => set({ nics: patchAt(hw.nics, i, { bandwidth: limits(n.bandwidth, "inMbit", e.target.value) }) })} />
                </label>
                <label className="label">
                  Out, Mbit/s
                  <input name={`nic${i}-bandwidth-out`} type="number" min={1} max={100000} className="field w-28" placeholder="no limit" value={n.bandwidth?.outMbit ?? ""}
                    onChange={(e) => set({ nics: patchAt(hw.nics, i, { bandwidth: limits(n.bandwidth, "outMbit", e.target.value) }) })} />
                </label>
                <p className="text-xs text-slate-500">Bandwidth as the guest sees it: in reaches it, out is what it sends; more is dropped at its card.</p>
              </div>
            )}
            {bridged ? (
              <div className="flex items-end gap-3 text-sm">
                <label className="label">
                  VLAN
                  <input name={`nic${i}-vlan`} type="number" min={1} max={4094} className="field w-28" placeholder="untagged" disabled={!bridged.vlans && n.vlan === undefined}
                    value={n.vlan ?? ""} onChange={(e) => set({ nics: patchAt(hw.nics, i, { vlan: e.target.value === "" ? undefined : num(e.target.value) }) })} />
                </label>
                <p className="text-xs text-slate-500">
                  On the host&apos;s bridge of {n.network}, on its LAN: the LAN gives the card its address.{" "}
                  {bridged.vlans ? `Its cards may be on VLAN ${bridged.vlans} (empty: untagged).` : "Its cards go untagged: an admin grants VLANs."}
                </p>
              </div>
            ) : managed ? (
              <p className="text-xs text-slate-500">On the managed network {n.network}: its DHCP gives the card its address, and the network&apos;s rules decide what it reaches.</p>
            ) : (
            <>
            <label className="flex items-start gap-2 text-sm" title="User-mode networking with restrict=on">
              <input type="checkbox" name={`nic${i}-isolated`} className="mt-1" checked={n.isolated} onChange={(e) => set({ nics: patchAt(hw.nics, i, { isolated: e.target.checked }) })} />
              <span>
                Isolated: the guest reaches neither this host (whose own services it can otherwise reach at 10.0.2.2) nor the
                network through this card. Port forwards into it still work.
              </span>
            </label>
            {n.forwards.map((f, k) => {
              const setForward = (patch: Partial<typeof f>) =>
                set({ nics: patchAt(hw.nics, i, { forwards: patchAt(n.forwards, k, patch) }) });
              return (
                <div key={k} className="flex items-end gap-2 text-sm">
                  <Choice name={`nic${i}-fwd${k}-protocol`} label="Protocol" value={f.protocol} options={FORWARD_PROTOCOLS} onChange={(protocol) => setForward({ protocol })} />
                  <label className="label">Host port
                    <input name={`nic${i}-fwd${k}-host`} type="number" className="field w-28" value={f.hostPort} onChange={(e) => setForward({ hostPort: num(e.target.value) })} />
                  </label>
                  <label className="label">Guest port
                    <input name={`nic${i}-fwd${k}-guest`} type="number" className="field w-28" value={f.guestPort} onChange={(e) => setForward({ guestPort: num(e.target.value) })} />
                  </label>
                  <button type="button" className="btn mb-0.5" onClick={() => set({ nics: patchAt(hw.nics, i, { forwards: n.forwards.filter((_, l) => l !== k) }) })}>
                    Remove
                  </button>
                </div>
              );
            })}
            <button
              type="button"
              className="btn"
              onClick={() => set({ nics: patchAt(hw.nics, i, { forwards: [...n.forwards, { protocol: "tcp", hostPort: forwardPorts?.firstPort ?? 20000, guestPort: 22 }] }) })}
            >
              Add port forward
            </button>
            {forwardPorts && n.forwards.length > 0 && (
              <p className="text-xs text-slate-500">
                Host ports {forwardPorts.firstPort}–{forwardPorts.lastPort}, reachable at {forwardPorts.address === "127.0.0.1" ? "this host only (127.0.0.1)" : forwardPorts.address}.
              </p>
            )}
            </>
            )}
          </div>
          );
        })}
        <div className="col-span-2">
          <button type="button" className="btn" onClick={() => set({ nics: [...hw.nics, { model: "virtio", network: "user", isolated: false, forwards: [] }] })}>
            Add network card
          </button>
        </div>
      </Section>

      <Section title="Description and tags">
        <label className="label col-span-2">
          Description
          <textarea name="description" className="field" rows={3} value={hw.description} onChange={(e) => set({ description: e.target.value })} />
        </label>
        <label className="label col-span-2">
          Tags (comma-separated)
          <input name="tags" className="field" value={tagText} onChange={(e) => setTagText(e.target.value)} />
        </label>
      </Section>

      {error && (
        <p role="alert" data-testid="form-error" className="rounded-md bg-red-50 p-3 text-sm text-red-800">
          {error}
          <AskForMore quota={quota} />
        </p>
      )}
      <div className="flex justify-end gap-2">
        <button type="submit" className="btn btn-primary" disabled={pending}>
          {pending ? "Saving…" : "Save hardware"}
        </button>
      </div>
    </form>
  );
}

function Section({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <fieldset className="card grid grid-cols-2 gap-4 p-5">
      <legend className="px-1 text-sm font-semibold">{title}</legend>
      {children}
    </fieldset>
  );
}

function Field({ label: text, children }: { label: string; children: React.ReactNode }) {
  return (
    <label className="label">
      {text}
      {children}
    </label>
  );
}

function Choice<T extends string>(props: { name: string; label: string; value: T; options: readonly T[]; onChange: (value: T) => void }) {
  return (
    <label className="label">
      {props.label}
      <select name={props.name} className="field" value={props.value} onChange={(e) => props.onChange(e.target.value as T)}>
        {props.options.map((o) => (
          <option key={o} value={o}>
            {label(o)}
          </option>
        ))}
      </select>
    </label>
  );
}

/** A card's limits with one of them set from a field (empty: that limit goes); none left: undefined. */
function limits(current: { inMbit?: number; outMbit?: number } | undefined, which: "inMbit" | "outMbit", text: string): { inMbit?: number; outMbit?: number } | undefined {
  const next = { ...current };
  if (text.trim() === "") delete next[which];
  else next[which] = Number(text);
  return next.inMbit === undefined && next.outMbit === undefined ? undefined : next;
}
