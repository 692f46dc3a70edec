/**
 * The web's view of guests: database rows joined with the agents' live state.
 * The list path makes one batched status call per host, never one per guest.
 */
import { notFound } from "next/navigation";
import { AgentClient } from "../agent-client";
import { assertCan, ownedWhere, refusalFor, type Action } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { GuesthouseError } from "../domain/errors";
import type { GuestSpec, GuestStatus, NicBandwidth } from "../domain/types";
import { guestSpecSchema, MAX_BACKING_IMAGES, parseOrThrow, type GuestDefinition } from "../domain/validation";
import { stateHub } from "./state-hub";

/** What the spec needs of a base image: where it is, its format, and whether it has a base itself. */
const baseFields = { pool: true, file: true, format: true, baseId: true } as const;
/** A disk's bases, as deep as a linked clone may go (MAX_BACKING_IMAGES): include it as a disk's `base`. */
export const baseChain = {
  select: { ...baseFields, base: { select: { ...baseFields, base: { select: { ...baseFields, base: { select: baseFields } } } } } },
} as const;

export const guestInclude = {
  host: { select: { id: true, name: true, endpoint: true } },
  owner: { select: { username: true } },
  disks: { orderBy: { position: "asc" as const }, include: { base: baseChain } },
  cdroms: { orderBy: { position: "asc" as const }, include: { iso: { select: { name: true } } } },
  nics: { orderBy: { position: "asc" as const }, include: { network: { select: { id: true, name: true, mode: true } } } },
};

export type GuestRow = NonNullable<Awaited<ReturnType<typeof findGuest>>>;

function findGuest(user: SessionUser, id: string) {
  return db.guest.findFirst({ where: { id, ...ownedWhere(user, "view") }, include: guestInclude });
}

const notVisible = () => new GuesthouseError("not-found", "This guest does not exist, or you may not see it.");
const plausibleId = (id: unknown): id is string => typeof id === "string" && id.length <= 64;

/**
 * The guest if this user may do `action` to it (server/auth/policy.ts): "not found" when
 * they may not even see it (whether or not it exists), "forbidden" with why when they
 * may see it but not do this. Every caller names what it is about to do.
 */
export async function loadGuest(user: SessionUser, id: string, action: Action): Promise<GuestRow> {
  const guest = plausibleId(id) ? await findGuest(user, id) : null;
  if (!guest) throw notVisible();
  assertCan(user, action, guest, refusalFor("guest", action));
  return guest;
}

/** Like loadGuest, but only its id, name and host: for reads that pages poll. */
export async function loadGuestBrief(user: SessionUser, id: string, action: Action): Promise<{ id: string; name: string; host: { endpoint: string } }> {
  const guest = plausibleId(id)
    ? await db.guest.findFirst({
        where: { id, ...ownedWhere(user, "view") },
        select: { id: true, name: true, teamId: true, ownerId: true, host: { select: { endpoint: true } } },
      })
    : null;
  if (!guest) throw notVisible();
  assertCan(user, action, guest, refusalFor("guest", action));
  return guest;
}

/** For pages: the guest, or Next's 404 page when this user may not see it. */
export async function loadGuestOr404(user: SessionUser, id: string, action: Action = "view"): Promise<GuestRow> {
  try {
    return await loadGuest(user, id, action);
  } catch (err) {
    if (err instanceof GuesthouseError && err.code === "not-found") notFound();
    throw err;
  }
}

export function agentFor(host: { endpoint: string }): AgentClient {
  return new AgentClient(host.endpoint);
}

/**
 * The spec the agent runs, from the database rows. It is parsed with the same schema
 * the agent uses, so a row the agent would refuse fails here, with the reason.
 */
export function specOf(guest: GuestRow): GuestSpec {
  return parseOrThrow(
    guestSpecSchema,
    {
      id: guest.id,
      name: guest.name,
      machine: guest.machine,
      firmware: guest.firmware,
      vcpus: guest.vcpus,
      sockets: guest.sockets,
      threads: guest.threads,
      memoryMiB: guest.memoryMiB,
      bootOrder: guest.bootOrder ? guest.bootOrder.split(",") : [],
      display: guest.display,
      serial: guest.serial,
      rtc: guest.rtc,
      disks: guest.disks.map((d) => ({
        volume: d.volume,
        pool: d.pool,
        file: d.file,
        format: d.format,
        backing: backingOf(d),
        encrypted: d.encrypted,
        bus: d.bus,
        cache: d.cache,
        readOnly: d.readOnly,
      })),
      cdroms: guest.cdroms.map((c) => ({ iso: c.iso.name })),
      // A card on a managed network is a tap on its bridge (the network's id is the agent's name for it).
      nics: guest.nics.map((n) => nicSpecOf({ ...n, forwards: JSON.parse(n.forwards) as unknown, vlan: n.vlan ?? undefined, ...bandwidthOf(n) }, n.network)),
    },
    `The stored definition of ${guest.name}`,
  );
}

/**
 * A card as the agent runs it, from its fields and its network: on user-mode networking
 * (its own forwards) or a tap on a managed network (whose id is the agent's name for it).
 * Not yet validated: the spec it goes into is.
 */
export function nicSpecOf(
  card: { mac: string; model: string; isolated: boolean; forwards: unknown; vlan?: number; bandwidth?: NicBandwidth },
  network: { id: string; mode: string },
): Record<string, unknown> {
  return network.mode === "user"
    ? { mac: card.mac, model: card.model, mode: "user", isolated: card.isolated, forwards: card.forwards }
    : { mac: card.mac, model: card.model, mode: "managed", network: network.id, ...(card.vlan !== undefined ? { vlan: card.vlan } : {}), ...(card.bandwidth ? { bandwidth: card.bandwidth } : {}), isolated: false, forwards: [] };
}

/** A card row's bandwidth limits as the spec has them (left out when it has none). */
export function bandwidthOf(row: { bandwidthInMbit: number | null; bandwidthOutMbit: number | null }): { bandwidth?: NicBandwidth } {
  if (row.bandwidthInMbit === null && row.bandwidthOutMbit === null) return {};
  return { bandwidth: { ...(row.bandwidthInMbit !== null ? { inMbit: row.bandwidthInMbit } : {}), ...(row.bandwidthOutMbit !== null ? { outMbit: row.bandwidthOutMbit } : {}) } };
}

/** The columns of a card's bandwidth limits, from a form's or definition's card. */
export function bandwidthColumns(card: { bandwidth?: NicBandwidth }): { bandwidthInMbit: number | null; bandwidthOutMbit: number | null } {
  return { bandwidthInMbit: card.bandwidth?.inMbit ?? null, bandwidthOutMbit: card.bandwidth?.outMbit ?? null };
}

type BaseRow = { pool: string; file: string; format: string; baseId: string | null; base?: BaseRow | null };

/**
 * A disk's bases from the database, nearest first: what the agent gives QEMU as the
 * disk's backing chain (never the names in the images' headers). A chain deeper than
 * the rows loaded (MAX_BACKING_IMAGES) is refused, as making one is.
 */
function backingOf(disk: { baseId: string | null; base?: BaseRow | null }): Array<{ pool: string; file: string; format: string }> {
  const chain: Array<{ pool: string; file: string; format: string }> = [];
  let at: { baseId: string | null; base?: BaseRow | null } = disk;
  while (at.baseId !== null) {
    if (!at.base || chain.length >= MAX_BACKING_IMAGES) {
      throw new GuesthouseError("invalid-input", `A disk sits on more than ${MAX_BACKING_IMAGES} base images; it cannot be started. Make a full clone of its guest instead.`);
    }
    chain.push({ pool: at.base.pool, file: at.base.file, format: at.base.format });
    at = at.base;
  }
  return chain;
}

/** The guest's portable definition (for export and cloning): no host, path, volume or MAC. */
export function definitionOf(guest: GuestRow, name = guest.name): GuestDefinition {
  const spec = specOf(guest);
  return {
    guesthouse: 1,
    name,
    machine: spec.machine,
    firmware: spec.firmware,
    vcpus: spec.vcpus,
    sockets: spec.sockets,
    threads: spec.threads,
    memoryMiB: spec.memoryMiB,
    bootOrder: spec.bootOrder,
    display: spec.display,
    serial: spec.serial,
    rtc: spec.rtc,
    description: guest.description,
    tags: JSON.parse(guest.tags) as string[],
    disks: guest.disks.map((d, i) => ({
      // Definitions speak whole GiB; a disk of 1.5 GiB is exported as 2.
      sizeGiB: Math.max(1, Math.ceil(Number(d.sizeBytes) / 2 ** 30)),
      format: spec.disks[i]!.format,
      bus: spec.disks[i]!.bus,
      cache: spec.disks[i]!.cache,
      readOnly: spec.disks[i]!.readOnly,
    })),
    cdroms: spec.cdroms,
    nics: spec.nics.map((n, i) => ({
      model: n.model,
      ...(n.mode === "managed" ? { network: guest.nics[i]!.network.name, ...(n.vlan !== undefined ? { vlan: n.vlan } : {}), ...(n.bandwidth ? { bandwidth: n.bandwidth } : {}) } : {}),
      isolated: n.isolated,
      forwards: n.forwards,
    })),
  };
}

const STOPPED = (id: string): GuestStatus => ({ id, state: "stopped", since: 0, pid: null, logTail: null, argv: null, spec: null });

/**
 * Live state for many guests: from the state hub, which follows every host's event
 * stream, or (a host it does not follow yet) one agent call per distinct host. A host
 * whose agent is down yields `null` states, shown as "unknown", rather than failing the page.
 */
export async function liveStates(
  guests: Array<{ id: string; host: { id: string; endpoint: string } }>,
): Promise<Map<string, GuestStatus | null>> {
  const hosts = new Map<string, string>();
  for (const g of guests) hosts.set(g.host.id, g.host.endpoint);
  const byHost = new Map<string, ReadonlyMap<string, GuestStatus> | null>();
  await Promise.all(
    [...hosts].map(async ([hostId, endpoint]) => {
      const followed = stateHub.statusesOf(hostId);
      if (followed) return void byHost.set(hostId, followed);
      try {
        const list = await new AgentClient(endpoint).guests();
        byHost.set(hostId, new Map(list.map((s) => [s.id, s])));
      } catch {
        byHost.set(hostId, null);
      }
    }),
  );
  const states = new Map<string, GuestStatus | null>();
  for (const g of guests) {
    const host = byHost.get(g.host.id);
    states.set(g.id, host === null || host === undefined ? null : (host.get(g.id) ?? STOPPED(g.id)));
  }
  return states;
}

export async function liveState(guest: { id: string; host: { endpoint: string } }): Promise<GuestStatus> {
  return agentFor(guest.host).guest(guest.id);
}

