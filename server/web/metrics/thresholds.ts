/**
 * Thresholds per team: what counts as a guest or a storage folder in trouble (CPU over
 * 90 % for 10 minutes, a storage folder over 90 % full, …). A team's owners set them on
 * the Teams page; a team that set none has DEFAULT_THRESHOLDS. They are checked when a
 * page asks, against the history (the store's 10 s points) and the agents' figures now,
 * and shown as badges on the guest list and the host page. Nothing is kept of an alert:
 * it holds exactly while the figures say so.
 */
import { canManageTeam, canWorkInTeam } from "../../auth/policy";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import { isForeignKeyViolation } from "../../db/errors";
import { GuesthouseError } from "../../domain/errors";
import { DEFAULT_THRESHOLDS, THRESHOLD_KINDS, type GuestField, type Threshold, type ThresholdKind } from "../../domain/metrics";
import { parseOrThrow, thresholdsInput } from "../../domain/validation";
import { recordEvent } from "../audit";
import { agentsNow, currentOf, hostFor, seenGuests, type SeenGuest } from "./views";
import type { FieldStats } from "./buckets";
import { recentStats } from "./store";

/** One threshold a guest or a storage folder crosses now. */
export interface MetricAlert {
  kind: ThresholdKind;
  /** The guest's id, or the storage folder's name. */
  subject: string;
  /** In words, for the badge's title: "CPU above 90 % for 10 minutes (95 % on average)". */
  message: string;
  /** The badge's short text: "CPU 95 %". */
  label: string;
}

export type TeamThresholds = Record<ThresholdKind, Threshold>;

/** Each team's thresholds (its own, else the defaults), by team id. */
export async function thresholdsOf(teamIds: readonly string[]): Promise<Map<string, TeamThresholds>> {
  const rows = teamIds.length ? await db.metricThreshold.findMany({ where: { teamId: { in: [...new Set(teamIds)] } } }) : [];
  const out = new Map<string, TeamThresholds>(teamIds.map((id) => [id, { ...DEFAULT_THRESHOLDS }]));
  for (const row of rows) {
    if ((THRESHOLD_KINDS as readonly string[]).includes(row.kind)) out.get(row.teamId)![row.kind as ThresholdKind] = { percent: row.percent, minutes: row.minutes };
  }
  return out;
}

/** A team's thresholds (its own, else the defaults): to whoever works in the team, and admins. */
export async function teamThresholds(actor: SessionUser, teamId: string): Promise<TeamThresholds> {
  const team = String(teamId);
  if (!canWorkInTeam(actor, team) || !(await db.team.findUnique({ where: { id: team }, select: { id: true } }))) {
    throw new GuesthouseError("not-found", "There is no such team that you are in.");
  }
  return (await thresholdsOf([team])).get(team)!;
}

/** Sets a team's thresholds (its owners and admins), all kinds at once, in one transaction; the audit trail says so. */
export async function setTeamThresholds(actor: SessionUser, teamId: string, input: unknown): Promise<TeamThresholds> {
  const team = String(teamId);
  if (!canManageTeam(actor, team)) throw new GuesthouseError("forbidden", "Only the team's owners and admins set its thresholds.");
  const given = parseOrThrow(thresholdsInput, input);
  const wanted: TeamThresholds = {
    "guest-cpu": given["guest-cpu"],
    "guest-memory": given["guest-memory"],
    "folder-space": { percent: given["folder-space"].percent, minutes: 0 },
  };
  // A team that is not there (or went meanwhile) is the rows' foreign key refused.
  await db
    .$transaction(
      THRESHOLD_KINDS.map((kind) =>
        db.metricThreshold.upsert({
          where: { teamId_kind: { teamId: team, kind } },
          create: { teamId: team, kind, ...wanted[kind] },
          update: wanted[kind],
        }),
      ),
    )
    .catch((err: unknown) => {
      throw isForeignKeyViolation(err) ? new GuesthouseError("not-found", "There is no such team.") : err;
    });
  const cpu = wanted["guest-cpu"];
  const memory = wanted["guest-memory"];
  const said = `set the thresholds: CPU ${cpu.percent} % for ${cpu.minutes} min, memory ${memory.percent} % for ${memory.minutes} min, storage ${wanted["folder-space"].percent} %`;
  await recordEvent("team-thresholds", true, said, actor, null, { teamId: team }).catch(() => {});
  return wanted;
}

const round = (n: number) => Math.round(n);
const minutesText = (n: number) => `${n} minute${n === 1 ? "" : "s"}`;

/**
 * The thresholds each of these guests crosses now, by guest id (guests crossing none are
 * left out). Only guests the user may see are looked at; the others are ignored.
 */
export async function guestAlerts(user: SessionUser, guestIds: readonly string[]): Promise<Map<string, MetricAlert[]>> {
  return alertsFor(await seenGuests(user, guestIds));
}

/** The alerts of guests already loaded with the policy (seenGuests); `current`: what their agents said just now, if already asked. */
export async function alertsFor(guests: readonly SeenGuest[], current?: Awaited<ReturnType<typeof currentOf>>): Promise<Map<string, MetricAlert[]>> {
  const out = new Map<string, MetricAlert[]>();
  if (guests.length === 0) return out;
  const thresholds = await thresholdsOf(guests.map((g) => g.team.id));
  const add = (id: string, alert: MetricAlert) => out.set(id, [...(out.get(id) ?? []), alert]);

  // CPU and memory: over each distinct window, one batched read of the 10 s points.
  const windows = new Map<number, SeenGuest[]>();
  for (const g of guests) {
    const t = thresholds.get(g.team.id)!;
    for (const m of new Set([t["guest-cpu"].minutes, t["guest-memory"].minutes])) windows.set(m, [...(windows.get(m) ?? []), g]);
  }
  const now = Date.now();
  for (const [mins, members] of windows) {
    const stats = await recentStats("guest", members.map((g) => g.id), mins * 60, now);
    for (const g of members) {
      const t = thresholds.get(g.team.id)!;
      const s = stats.get(g.id);
      // The window must be covered from its start: a guest that started 2 minutes ago has not been busy for 10.
      if (!s || !covers(s, mins * 60, now)) continue;
      const cpu = t["guest-cpu"];
      if (cpu.minutes === mins && s.cpu && s.cpu.min !== null && s.cpu.min > cpu.percent) {
        add(g.id, {
          kind: "guest-cpu",
          subject: g.id,
          label: `CPU ${round(s.cpu.avg!)} %`,
          message: `CPU above ${cpu.percent} % of its vCPUs for ${minutesText(mins)} (${round(s.cpu.avg!)} % on average, at least ${round(s.cpu.min)} %).`,
        });
      }
      const mem = t["guest-memory"];
      if (mem.minutes === mins) {
        const used = memoryUsedLowest(s, g.memory);
        if (used !== null && used > mem.percent) {
          add(g.id, {
            kind: "guest-memory",
            subject: g.id,
            label: `Memory ${round(used)} %`,
            message: `Memory in use above ${mem.percent} % for ${minutesText(mins)} (at least ${round(used)} %${s.memTotal?.last ? ", as the guest sees it" : " of its configured size, as QEMU holds it"}).`,
          });
        }
      }
    }
  }

  // Storage folders: the fullness now of each folder the guest's disks are in.
  const disks = await db.disk.findMany({ where: { guestId: { in: guests.map((g) => g.id) } }, select: { guestId: true, pool: true } });
  const pools = new Map<string, Set<string>>();
  for (const d of disks) if (d.guestId) pools.set(d.guestId, (pools.get(d.guestId) ?? new Set()).add(d.pool));
  const hosts = (current ?? (await currentOf(guests))).hosts;
  for (const g of guests) {
    const host = hosts.get(g.host.id);
    const limit = thresholds.get(g.team.id)!["folder-space"].percent;
    for (const pool of pools.get(g.id) ?? []) {
      const folder = host?.folders.find((f) => f.pool === pool);
      const full = folder ? fullness(folder) : null;
      if (full !== null && full > limit) {
        add(g.id, { kind: "folder-space", subject: pool, label: `${pool} ${round(full)} % full`, message: `The storage folder ${pool}, where this guest's disks are, is ${round(full)} % full (the team's threshold is ${limit} %).` });
      }
    }
  }
  return out;
}

/** The storage folders of a host over any team's threshold (admins: the host page), with whose. */
export async function hostAlerts(user: SessionUser, hostId: string): Promise<MetricAlert[]> {
  const host = await hostFor(user, hostId);
  const teams = await db.team.findMany({ select: { id: true, name: true } });
  const thresholds = await thresholdsOf(teams.map((t) => t.id));
  const answer = (await agentsNow([host])).get(host.id);
  const folders = answer && !(answer instanceof Error) ? answer.host.folders : [];
  const out: MetricAlert[] = [];
  for (const folder of folders) {
    const full = fullness(folder);
    if (full === null) continue;
    const crossed = teams.filter((t) => full > thresholds.get(t.id)!["folder-space"].percent);
    const lowest = Math.min(...teams.map((t) => thresholds.get(t.id)!["folder-space"].percent), DEFAULT_THRESHOLDS["folder-space"].percent);
    if (crossed.length === 0 && full <= lowest) continue;
    out.push({
      kind: "folder-space",
      subject: folder.pool,
      label: `${folder.pool} ${round(full)} % full`,
      message: `The storage folder ${folder.pool} is ${round(full)} % full: above the threshold of ${crossed.length ? crossed.map((t) => t.name).join(", ") : `the default (${DEFAULT_THRESHOLDS["folder-space"].percent} %)`}.`,
    });
  }
  return out;
}

const fullness = (folder: { totalBytes: number; freeBytes: number }) => (folder.totalBytes > 0 ? (1 - folder.freeBytes / folder.totalBytes) * 100 : null);

type Stats = Record<GuestField, FieldStats>;

/** Whether the points reach back to the window's start (within one 10 s bucket and a collection's delay). */
function covers(stats: Stats, seconds: number, now: number): boolean {
  const first = stats.rss.since;
  return first !== null && first <= now / 1000 - seconds + 15;
}

/**
 * The lowest share of memory in use over the window: the guest's own view where its
 * balloon reports (total less the most it had available), else QEMU's resident memory
 * against the configured size.
 */
function memoryUsedLowest(s: Stats, configured: number): number | null {
  if (s.memTotal?.last && s.memAvailable?.max !== null && s.memAvailable?.max !== undefined) return (1 - s.memAvailable.max / s.memTotal.last) * 100;
  if (s.rss?.min !== null && s.rss?.min !== undefined && configured > 0) return (s.rss.min / configured) * 100;
  return null;
}
