/**
 * The record of console sessions: one row per connection through the bridge (who or
 * which link, which guest and console, view-only or not, start and end). The bridge
 * touches its live rows every few seconds (`seenAt`), so a row left open by a web
 * process that died stops counting as connected and is closed later.
 */
import type { PrismaClient } from "../db/client";
import { SESSION_STALE_MS, type ConsoleKind, type ViewerView } from "./types";

export interface SessionStart {
  guestId: string;
  userId: string | null;
  shareId: string | null;
  kind: ConsoleKind;
  viewOnly: boolean;
}

export async function startSession(db: PrismaClient, start: SessionStart, now = new Date()): Promise<string> {
  const row = await db.consoleSession.create({ data: { ...start, startedAt: now, seenAt: now }, select: { id: true } });
  return row.id;
}

export async function endSession(db: PrismaClient, id: string, reason: string, now = new Date()): Promise<void> {
  await db.consoleSession.updateMany({ where: { id, endedAt: null }, data: { endedAt: now, seenAt: now, endReason: reason.slice(0, 200) } });
}

export async function touchSessions(db: PrismaClient, ids: string[], now = new Date()): Promise<void> {
  if (ids.length) await db.consoleSession.updateMany({ where: { id: { in: ids }, endedAt: null }, data: { seenAt: now } });
}

/** Ends rows nobody has touched for a while: their web process went away mid-session. */
export async function closeStaleSessions(db: PrismaClient, now = new Date()): Promise<number> {
  const stale = await db.consoleSession.findMany({
    where: { endedAt: null, seenAt: { lt: new Date(now.getTime() - SESSION_STALE_MS) } },
    select: { id: true, seenAt: true },
  });
  for (const row of stale) {
    await db.consoleSession.updateMany({
      where: { id: row.id, endedAt: null },
      data: { endedAt: row.seenAt, endReason: "lost: the web server stopped" },
    });
  }
  return stale.length;
}

const viewerSelect = {
  id: true,
  kind: true,
  viewOnly: true,
  startedAt: true,
  user: { select: { username: true } },
  share: { select: { label: true } },
  shareId: true,
} as const;

function viewerOf(row: {
  id: string;
  kind: string;
  viewOnly: boolean;
  startedAt: Date;
  user: { username: string } | null;
  share: { label: string } | null;
  shareId: string | null;
}): ViewerView {
  return {
    id: row.id,
    username: row.user?.username ?? null,
    share: row.shareId ? (row.share?.label ?? "") : null,
    kind: row.kind as ConsoleKind,
    viewOnly: row.viewOnly,
    startedAt: row.startedAt.toISOString(),
  };
}

/** Who is connected to this guest's consoles now, longest first. */
export async function liveViewers(db: PrismaClient, guestId: string, now = new Date()): Promise<ViewerView[]> {
  const rows = await db.consoleSession.findMany({
    where: { guestId, endedAt: null, seenAt: { gte: new Date(now.getTime() - SESSION_STALE_MS) } },
    orderBy: { startedAt: "asc" },
    take: 100,
    select: viewerSelect,
  });
  return rows.map(viewerOf);
}

export interface SessionRecord extends ViewerView {
  endedAt: string | null;
  endReason: string | null;
}

/** The guest's latest console sessions, newest first. */
export async function recentSessions(db: PrismaClient, guestId: string, take = 10): Promise<SessionRecord[]> {
  const rows = await db.consoleSession.findMany({
    where: { guestId },
    orderBy: { startedAt: "desc" },
    take,
    select: { ...viewerSelect, endedAt: true, endReason: true },
  });
  return rows.map((r) => ({ ...viewerOf(r), endedAt: r.endedAt?.toISOString() ?? null, endReason: r.endReason }));
}
