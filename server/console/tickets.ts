/**
 * Console tickets: single-use, short-lived, bound to one user and one guest.
 * The ticket is 256 random bits shown once to the browser; the database keeps its
 * hash. Consumption is one atomic UPDATE, so two racing uses cannot both win.
 */
import type { PrismaClient } from "../db/client";
import { CONSOLE_TICKET_TTL_MS, type ConsoleTicket } from "../domain/types";
import { hashSecret, newSecret } from "../auth/tokens";

export async function mintTicket(
  db: PrismaClient,
  userId: string,
  guestId: string,
  now = new Date(),
): Promise<ConsoleTicket> {
  const ticket = newSecret();
  const expiresAt = new Date(now.getTime() + CONSOLE_TICKET_TTL_MS);
  await db.consoleTicket.create({ data: { id: hashSecret(ticket), userId, guestId, expiresAt } });
  // Old tickets are kept no longer than needed.
  await db.consoleTicket.deleteMany({ where: { expiresAt: { lt: new Date(now.getTime() - 60_000) } } });
  return { ticket, userId, guestId, expiresAt };
}

export type TicketRefusal = "malformed" | "unknown" | "used" | "expired" | "wrong-guest";

/**
 * Marks the ticket used and returns whom it was for, or why it was refused.
 * A refused ticket is burnt as well, so a guessed or replayed one never works later.
 */
export async function consumeTicket(
  db: PrismaClient,
  ticket: string | null,
  guestId: string | null,
  now = new Date(),
): Promise<{ ok: true; userId: string; guestId: string } | { ok: false; reason: TicketRefusal }> {
  if (!ticket || !/^[A-Za-z0-9_-]{43}$/.test(ticket)) return { ok: false, reason: "malformed" };
  const id = hashSecret(ticket);
  const claimed = await db.consoleTicket.updateMany({
    where: { id, usedAt: null },
    data: { usedAt: now },
  });
  const row = await db.consoleTicket.findUnique({ where: { id }, select: { userId: true, guestId: true, expiresAt: true } });
  if (!row) return { ok: false, reason: "unknown" };
  if (claimed.count === 0) return { ok: false, reason: "used" };
  if (row.expiresAt.getTime() <= now.getTime()) return { ok: false, reason: "expired" };
  if (guestId !== null && row.guestId !== guestId) return { ok: false, reason: "wrong-guest" };
  return { ok: true, userId: row.userId, guestId: row.guestId };
}
