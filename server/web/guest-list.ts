/**
 * The guest list's query, shared by the page, the API and the list's benchmark: one page
 * of guests in name order (narrowed by the API's filters), with just the columns the list shows. Rows of the page only,
 * so the list stays fast however many guests there are. And what lists and answers show of
 * a guest's addresses (its live status carries them: server/web/state-hub.ts).
 */
import { ownedWhere } from "../auth/policy";
import type { SessionUser } from "../auth/sessions";
import type { PrismaClient } from "../db/client";
import type { Prisma } from "../db/generated/client";
import type { GuestStatus } from "../domain/types";

export const GUEST_PAGE_SIZE = 100;

/** The columns of a guest in any list: the page's row shows its devices too (`withDevices`), the API's summary does not. */
const SUMMARY = {
  id: true,
  name: true,
  vcpus: true,
  memoryMiB: true,
  isTemplate: true,
  tags: true,
  host: { select: { id: true, name: true, endpoint: true } },
  owner: { select: { username: true } },
  team: { select: { id: true, name: true } },
} as const;
const DEVICES = {
  disks: { select: { sizeBytes: true, bus: true }, orderBy: { position: "asc" } },
  cdroms: { select: { iso: { select: { name: true } } } },
  nics: { select: { mac: true, model: true, network: { select: { name: true, mode: true } } }, orderBy: { position: "asc" } },
} as const;

export function guestListQuery(db: PrismaClient, user: SessionUser, page: number, pageSize = GUEST_PAGE_SIZE, filter: Prisma.GuestWhereInput = {}) {
  return db.guest.findMany({ ...listArgs(user, page, pageSize, filter), select: { ...SUMMARY, ...DEVICES } });
}

/** The same page of the same guests, without their devices (the API's summaries). */
export function guestSummaryQuery(db: PrismaClient, user: SessionUser, page: number, pageSize: number, filter: Prisma.GuestWhereInput = {}) {
  return db.guest.findMany({ ...listArgs(user, page, pageSize, filter), select: SUMMARY });
}

function listArgs(user: SessionUser, page: number, pageSize: number, filter: Prisma.GuestWhereInput) {
  return {
    where: { AND: [ownedWhere(user, "view"), filter] },
    orderBy: [{ name: "asc" as const }, { id: "asc" as const }],
    skip: (page - 1) * pageSize,
    take: pageSize,
  };
}

/** The page number from the query string: a whole number from 1, anything else is 1. */
export function pageNumber(value: string | string[] | undefined): number {
  const n = typeof value === "string" && /^\d{1,6}$/.test(value) ? Number(value) : 1;
  return Math.max(1, n);
}

/** A card's addresses on a managed network, by its MAC, as the guest's live status has them (none known: empty lists). */
export function cardAddresses(status: Pick<GuestStatus, "addresses"> | null | undefined, mac: string): { ipv4: string[]; ipv6: string[] } {
  const nic = status?.addresses?.find((a) => a.mac.toLowerCase() === mac.toLowerCase());
  return { ipv4: nic?.ipv4 ?? [], ipv6: nic?.ipv6 ?? [] };
}

/** For a list row: the first IPv4 address of the guest's cards, in the cards' order (`macs`); null when none is known. */
export function firstIpv4(status: Pick<GuestStatus, "addresses"> | null | undefined, macs: readonly string[]): string | null {
  for (const mac of macs) {
    const [ip] = cardAddresses(status, mac).ipv4;
    if (ip) return ip;
  }
  return null;
}
