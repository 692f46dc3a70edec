/**
 * Pending changes: what differs between the spec a guest runs with and the one stored
 * for its next start, in words a person reads ("Memory: 256 MiB → 512 MiB").
 */
import { formatMiB } from "./format";
import type { DiskSpec, GuestSpec, NicSpec } from "./types";

export interface SpecChange {
  what: string;
  from: string;
  to: string;
}

const disk = (d: DiskSpec) => `${d.bus}, cache ${d.cache}${d.readOnly ? ", read-only" : ""}`;
const nic = (n: NicSpec) =>
  `${n.model} ${n.mac}${n.forwards.length ? `, ${n.forwards.map((f) => `${f.protocol} ${f.hostPort}→${f.guestPort}`).join(" ")}` : ""}`;

const FIELDS: Array<[string, (s: GuestSpec) => string]> = [
  ["Machine", (s) => s.machine],
  ["Firmware", (s) => (s.firmware === "uefi" ? "UEFI" : "BIOS")],
  ["vCPUs", (s) => `${s.vcpus} (${s.sockets} socket(s), ${s.threads} thread(s) per core)`],
  ["Memory", (s) => formatMiB(s.memoryMiB)],
  ["Boot order", (s) => s.bootOrder.join(", ") || "none"],
  ["Display", (s) => s.display],
  ["Serial console", (s) => (s.serial ? "on" : "off")],
  ["Clock", (s) => (s.rtc === "utc" ? "UTC" : "local time")],
];

export function diffSpecs(running: GuestSpec, next: GuestSpec): SpecChange[] {
  const changes: SpecChange[] = [];
  for (const [what, show] of FIELDS) {
    const from = show(running);
    const to = show(next);
    if (from !== to) changes.push({ what, from, to });
  }
  listDiff(changes, "Disk", running.disks, next.disks, (d) => d.volume, disk);
  listDiff(changes, "CD-ROM", running.cdroms, next.cdroms, (c, i) => `${i}`, (c) => c.iso);
  listDiff(changes, "Network card", running.nics, next.nics, (n) => n.mac, nic);
  return changes;
}

/** Items matched by key: added, removed, or changed. */
function listDiff<T>(
  changes: SpecChange[],
  what: string,
  before: T[],
  after: T[],
  key: (item: T, index: number) => string,
  show: (item: T) => string,
): void {
  const old = new Map(before.map((item, i) => [key(item, i), item]));
  const now = new Map(after.map((item, i) => [key(item, i), item]));
  let n = 0;
  for (const [k, item] of old) {
    n++;
    const next = now.get(k);
    if (!next) changes.push({ what: `${what} ${n}`, from: show(item), to: "removed" });
    else if (show(next) !== show(item)) changes.push({ what: `${what} ${n}`, from: show(item), to: show(next) });
  }
  for (const [k, item] of now) {
    if (!old.has(k)) changes.push({ what: `${what} (new)`, from: "none", to: show(item) });
  }
}
