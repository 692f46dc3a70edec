/**
 * View-only links to a guest's screen. A link carries a 256-bit token; the database
 * keeps only its SHA-256 (the row's id), so a leaked database holds no usable link.
 * A link works until it expires (1, 8 or 24 hours after it was made) or is revoked;
 * the share page asks `findShare`, the bridge `checkShare`, and the bridge ends live
 * sessions of a link that stopped working (server/console/bridge.ts).
 */
import type { PrismaClient } from "../db/client";
import { hashSecret, newSecret } from "../auth/tokens";
import { SHARE_DURATIONS, SHARE_LABEL_MAX, type ShareDuration, type ShareState, type ShareView } from "./types";

export async function createShare(
  db: PrismaClient,
  input: { guestId: string; createdById: string; duration: ShareDuration; label?: string },
  now = new Date(),
): Promise<{ token: string; id: string; expiresAt: Date }> {
  const token = newSecret();
  const id = hashSecret(token);
  const expiresAt = new Date(now.getTime() + SHARE_DURATIONS[input.duration]);
  await db.consoleShare.create({
    data: {
      id,
      guestId: input.guestId,
      createdById: input.createdById,
      label: (input.label ?? "").trim().slice(0, SHARE_LABEL_MAX),
      createdAt: now,
      expiresAt,
    },
  });
  return { token, id, expiresAt };
}

export type ShareRefusal = "malformed" | "unknown" | "expired" | "revoked";

export function shareState(row: { expiresAt: Date; revokedAt: Date | null }, now = new Date()): ShareState {
  if (row.revokedAt) return "revoked";
  return row.expiresAt.getTime() <= now.getTime() ? "expired" : "active";
}

/** The link behind a token, if it still works. */
export async function findShare(
  db: PrismaClient,
  token: string | null | undefined,
  now = new Date(),
): Promise<{ ok: true; share: { id: string; guestId: string; label: string; expiresAt: Date } } | { ok: false; reason: ShareRefusal }> {
  if (!token || !/^[A-Za-z0-9_-]{43}$/.test(token)) return { ok: false, reason: "malformed" };
  return checkShare(db, hashSecret(token), now);
}

/** The same check by the link's id (what tickets and sessions keep). */
export async function checkShare(
  db: PrismaClient,
  id: string,
  now = new Date(),
): Promise<{ ok: true; share: { id: string; guestId: string; label: string; expiresAt: Date } } | { ok: false; reason: ShareRefusal }> {
  const row = await db.consoleShare.findUnique({
    where: { id },
    select: { id: true, guestId: true, label: true, expiresAt: true, revokedAt: true },
  });
  if (!row) return { ok: false, reason: "unknown" };
  const state = shareState(row, now);
  if (state !== "active") return { ok: false, reason: state };
  return { ok: true, share: { id: row.id, guestId: row.guestId, label: row.label, expiresAt: row.expiresAt } };
}

/** Revokes a link of this guest; true if it was still working. */
export async function revokeShare(db: PrismaClient, guestId: string, id: string, now = new Date()): Promise<boolean> {
  const { count } = await db.consoleShare.updateMany({
    where: { id, guestId, revokedAt: null, expiresAt: { gt: now } },
    data: { revokedAt: now },
  });
  return count === 1;
}

/** The guest's links, newest first: working ones, and those that ended in the last day. */
export async function listShares(db: PrismaClient, guestId: string, now = new Date()): Promise<ShareView[]> {
  const since = new Date(now.getTime() - 24 * 3_600_000);
  const rows = await db.consoleShare.findMany({
    where: { guestId, expiresAt: { gt: since } },
    orderBy: { createdAt: "desc" },
    take: 50,
    select: { id: true, label: true, createdAt: true, expiresAt: true, revokedAt: true, createdBy: { select: { username: true } } },
  });
  return rows.map((r) => ({
    id: r.id,
    label: r.label,
    createdBy: r.createdBy?.username ?? null,
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt.toISOString(),
    state: shareState(r, now),
  }));
}
