/**
 * The console's words: which consoles a guest has, how long a view-only link
 * lives, what a viewer and a recorded session look like, and the states a console
 * page goes through. Pure (no I/O): the bridge, the actions and the pages share it.
 */
import { CONSOLE_WS_PATH } from "../domain/types";

/** The graphical screen (VNC through noVNC) and the first serial port (xterm.js). */
export const CONSOLE_KINDS = ["vnc", "serial"] as const;
export type ConsoleKind = (typeof CONSOLE_KINDS)[number];

export function isConsoleKind(value: unknown): value is ConsoleKind {
  return typeof value === "string" && (CONSOLE_KINDS as readonly string[]).includes(value);
}

export const CONSOLE_KIND_NAMES: Record<ConsoleKind, string> = { vnc: "screen", serial: "serial console" };

/** The same-origin websocket path of each console (under /ws/: no page route, so Next never sees the upgrade; see server/web/main.ts). */
export const CONSOLE_WS_PATHS: Record<ConsoleKind, string> = { vnc: CONSOLE_WS_PATH, serial: "/ws/serial" };

/** A view-only link's label (who it is for), at most this many characters. */
export const SHARE_LABEL_MAX = 80;

/** How long a view-only link may live: the maker picks one. */
export const SHARE_DURATIONS = { "1h": 3_600_000, "8h": 8 * 3_600_000, "24h": 24 * 3_600_000 } as const;
export type ShareDuration = keyof typeof SHARE_DURATIONS;
export const SHARE_DURATION_NAMES: Record<ShareDuration, string> = { "1h": "1 hour", "8h": "8 hours", "24h": "24 hours" };

export function isShareDuration(value: unknown): value is ShareDuration {
  return typeof value === "string" && Object.hasOwn(SHARE_DURATIONS, value);
}

/** The page of a view-only link; the token follows. */
export const SHARE_PATH = "/share";

export type ShareState = "active" | "expired" | "revoked";

/** A view-only link as its maker sees it (the token itself is shown once, when made). */
export interface ShareView {
  id: string;
  label: string;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string;
  state: ShareState;
}

/** The bridge touches its live sessions this often (and closes those of a dead link). */
export const SESSION_TOUCH_MS = 5_000;
/** A session not touched for this long belonged to a web process that went away. */
export const SESSION_STALE_MS = 30_000;

/** Someone connected to a guest's console right now. */
export interface ViewerView {
  id: string;
  /** The user's name, or null for someone who came through a view-only link. */
  username: string | null;
  /** For someone who came through a view-only link: its label ("" when it has none); null otherwise. */
  share: string | null;
  kind: ConsoleKind;
  viewOnly: boolean;
  startedAt: string;
}

/** How a viewer is named on the pages: the user, or the view-only link with its label. */
export function viewerName(viewer: Pick<ViewerView, "username" | "share">): string {
  if (viewer.username !== null) return viewer.username;
  return viewer.share ? `view-only link “${viewer.share}”` : "view-only link";
}

/**
 * What the console page shows, as a small checked state machine: a bug shows up as
 * an ignored transition in the console log instead of a wrong label.
 *
 *   connecting ──▶ connected ──▶ reconnecting ──▶ connecting / connected
 *        │             │               │
 *        ▼             ▼               ▼
 *    guest-off     disconnected   guest-off (waits for the guest to start)
 *
 * "disconnected" carries a reason and waits for the person to press Reconnect.
 */
export const CONSOLE_STATES = ["connecting", "connected", "reconnecting", "guest-off", "disconnected"] as const;
export type ConsoleStateKind = (typeof CONSOLE_STATES)[number];

const CONSOLE_TRANSITIONS: Record<ConsoleStateKind, readonly ConsoleStateKind[]> = {
  connecting: ["connected", "reconnecting", "guest-off", "disconnected"],
  // "connecting": the person asked for a fresh connection (reconnect, view-only toggled).
  connected: ["reconnecting", "guest-off", "disconnected", "connecting"],
  reconnecting: ["connecting", "connected", "guest-off", "disconnected"],
  "guest-off": ["connecting", "reconnecting", "disconnected"],
  disconnected: ["connecting"],
};

export function canConsoleTransition(from: ConsoleStateKind, to: ConsoleStateKind): boolean {
  return from === to || CONSOLE_TRANSITIONS[from].includes(to);
}

/** Waits between reconnect attempts while the guest runs or starts: 0.5 s, 1 s, 2 s, 4 s, then 5 s. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(5_000, 500 * 2 ** Math.max(0, attempt));
}
