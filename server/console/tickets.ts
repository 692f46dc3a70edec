/**
 * Console tickets: single-use, short-lived, bound to one guest and one console kind,
 * and to whoever asked: a logged-in user, or a view-only link (share). The ticket is
 * 256 random bits shown once to the browser; the database keeps its hash.
 * Consumption is one atomic UPDATE, so two racing uses cannot both win.
 */
import type { PrismaClient } from "../db/client";
import { CONSOLE_TICKET_TTL_MS, type ConsoleTicket } from "../domain/types";
import { hashSecret, newSecret } from "../auth/tokens";
import type { ConsoleKind } from "./types";

export interface TicketOptions {
  kind?: ConsoleKind;
  /** The bridge drops the keyboard, mouse and clipboard of a view-only session. */
  viewOnly?: boolean;
}

export interface MintedTicket extends Omit<ConsoleTicket, "userId"> {
  /** null for a view-only link's ticket (see shareId). */
  userId: string | null;
  shareId: string | null;
  kind: ConsoleKind;
  viewOnly: boolean;
}

/** A ticket for a logged-in user (who has been checked to be allowed this console). */
export function mintTicket(
  db: PrismaClient,
  userId: string,
  guestId: string,
  now = new Date(),
  { kind = "vnc", viewOnly = false }: TicketOptions = {},
): Promise<MintedTicket> {
  return mint(db, { userId, shareId: null, guestId, kind, viewOnly }, now);
}

/** A view-only screen ticket for someone holding a view-only link (checked to be valid). */
export function mintShareTicket(db: PrismaClient, shareId: string, guestId: string, now = new Date()): Promise<MintedTicket> {
  return mint(db, { userId: null, shareId, guestId, kind: "vnc", viewOnly: true }, now);
}

async function mint(
  db: PrismaClient,
  grant: { userId: string | null; shareId: string | null; guestId: string; kind: ConsoleKind; viewOnly: boolean },
  now: Date,
): Promise<MintedTicket> {
  const ticket = newSecret();
  const expiresAt = new Date(now.getTime() + CONSOLE_TICKET_TTL_MS);
  await db.consoleTicket.create({ data: { id: hashSecret(ticket), ...grant, expiresAt } });
  // Old tickets are kept no longer than needed.
  await db.consoleTicket.deleteMany({ where: { expiresAt: { lt: new Date(now.getTime() - 60_000) } } });
  return { ticket, ...grant, expiresAt };
}

export type TicketRefusal = "malformed" | "unknown" | "used" | "expired" | "wrong-guest" | "wrong-kind";

/** What a consumed ticket grants. Exactly one of userId and shareId is set. */
export interface TicketGrant {
  ok: true;
  userId: string | null;
  shareId: string | null;
  guestId: string;
  kind: ConsoleKind;
  viewOnly: boolean;
}

/**
 * Marks the ticket used and returns what it grants, or why it was refused. The
 * caller says which guest and which console the connection is for; a ticket for
 * another one is refused. A refused ticket is burnt as well, so a guessed or
 * replayed one never works later.
 */
export async function consumeTicket(
  db: PrismaClient,
  ticket: string | null,
  expect: { guestId: string | null; kind: ConsoleKind },
  now = new Date(),
): Promise<TicketGrant | { ok: false; reason: TicketRefusal }> {
  if (!ticket || !/^[A-Za-z0-9_-]{43}$/.test(ticket)) return { ok: false, reason: "malformed" };
  const id = hashSecret(ticket);
  const claimed = await db.consoleTicket.updateMany({
    where: { id, usedAt: null },
    data: { usedAt: now },
  });
  const row = await db.consoleTicket.findUnique({
    where: { id },
    select: { userId: true, shareId: true, guestId: true, kind: true, viewOnly: true, expiresAt: true },
  });
  if (!row) return { ok: false, reason: "unknown" };
  if (claimed.count === 0) return { ok: false, reason: "used" };
  if (row.expiresAt.getTime() <= now.getTime()) return { ok: false, reason: "expired" };
  if (expect.guestId !== null && row.guestId !== expect.guestId) return { ok: false, reason: "wrong-guest" };
  if (row.kind !== expect.kind) return { ok: false, reason: "wrong-kind" };
  return { ok: true, userId: row.userId, shareId: row.shareId, guestId: row.guestId, kind: expect.kind, viewOnly: row.viewOnly };
}
