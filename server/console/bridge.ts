/**
 * The console bridge, on the web's own origin: `/ws/console/<guest id>?ticket=…` for
 * the screen (VNC) and `/ws/serial/<guest id>?ticket=…` for the serial port. One code
 * path; the kind comes from the path and must match the ticket's.
 *
 * Before a single byte is relayed it checks, in order: the path, the handshake, the
 * Origin (no cross-site websockets; an API client that sends its token in an
 * Authorization header, which no browser can, is not asked for one), the ticket
 * (consumed atomically, bound to this guest and kind), and who the ticket is for: the
 * user of this request's login (its session cookie, or that API token), or a view-only
 * link that still works. Anything else gets a real HTTP status and the
 * socket is closed. The target is looked up server-side: the browser never names a
 * host, a port or a path.
 *
 * VNC: the first websocket message is text, `{"password":"…"}`, the one-time password
 * the agent set for this session (so it never travels in a URL); the guest's RFB
 * stream follows as binary messages. A view-only session's browser → guest stream
 * passes through the RFB filter (server/console/rfb-filter.ts), which drops input.
 *
 * Streams are piped, so a slow side pauses the fast one in both directions, and what
 * the guest sent before closing reaches the browser before the websocket closes.
 * Every session is recorded (server/console/sessions.ts); live ones are touched every
 * few seconds, and those of a view-only link that was revoked or expired are ended.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, createWebSocketStream, type WebSocket } from "ws";
import { AgentClient } from "../agent-client";
import { bearerToken, tokenUser } from "../auth/api-tokens";
import { ownedWhere, type Action } from "../auth/policy";
import { sessionSecretOf, userForSession, type SessionUser } from "../auth/sessions";
import type { PrismaClient } from "../db/client";
import { toGuesthouseError } from "../domain/errors";
import { refuseUpgrade } from "../http/refuse-upgrade";
import { rfbViewOnlyStream } from "./rfb-filter";
import { closeStaleSessions, endSession, startSession, touchSessions } from "./sessions";
import { checkShare } from "./shares";
import { consumeTicket, type TicketRefusal } from "./tickets";
import { CONSOLE_WS_PATHS, SESSION_TOUCH_MS, type ConsoleKind } from "./types";

/** Close codes the console pages understand (4000–4999 are the application's). */
export const CLOSE_CODES = {
  /** The view-only link was revoked or expired while someone watched. */
  shareEnded: 4001,
  /** The viewer's login ended (logged out, expired) or the guest is no longer theirs to see. */
  accessEnded: 4003,
  /** A view-only session sent something the filter cannot follow. */
  protocol: 1008,
  /** The web server is stopping. */
  goingAway: 1001,
} as const;

const KIND_OF_PREFIX = new Map<string, ConsoleKind>(
  Object.entries(CONSOLE_WS_PATHS).map(([kind, path]) => [path, kind as ConsoleKind]),
);
const GUEST_ID = /^[a-z0-9]{8,64}$/;

/** Why a ticket was refused, in words (the refusal adds "open the console again"). */
const TICKET_REFUSALS: Record<TicketRefusal, string> = {
  malformed: "The console ticket is missing or malformed",
  unknown: "There is no such console ticket",
  used: "This console ticket was used already",
  expired: "This console ticket expired",
  "wrong-guest": "This console ticket is for another guest",
  "wrong-kind": "This console ticket is for the other console (screen or serial port)",
};

export interface BridgeOptions {
  db: PrismaClient;
  /** Logs one line per session (who, which guest, how it ended). */
  log?: (line: string) => void;
  /** How often live sessions are touched and their links checked (tests shorten it). */
  touchMs?: number;
}

interface LiveSession {
  shareId: string | null;
  /**
   * The login that opened it (the session of the upgrade's cookie, or the API token of its
   * Authorization header) and what it lets them do (watch or operate): asked again while it lasts.
   */
  login: { via: "session" | "token"; secret: string; guestId: string; action: Action } | null;
  /** Closes the websocket with this code and reason, and records why. */
  close(code: number, reason: string): void;
}

/** Which console a request path asks for, or null if it is none of the bridge's. */
export function parseConsolePath(pathname: string): { kind: ConsoleKind; guestId: string | null } | null {
  for (const [prefix, kind] of KIND_OF_PREFIX) {
    if (pathname === prefix) return { kind, guestId: null };
    if (pathname.startsWith(`${prefix}/`)) {
      const rest = pathname.slice(prefix.length + 1);
      return { kind, guestId: GUEST_ID.test(rest) ? rest : null };
    }
  }
  return null;
}

export function createConsoleBridge({ db, log = console.log, touchMs = SESSION_TOUCH_MS }: BridgeOptions) {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4 * 1024 * 1024 });
  const live = new Map<string, LiveSession>();

  // Rows left open by a web process that died are closed; live rows are touched, and
  // sessions of a link that stopped working are ended.
  void closeStaleSessions(db).catch((err) => console.error("console: could not close stale sessions:", err));
  const toucher = setInterval(() => {
    void touch().catch((err) => console.error("console: could not touch sessions:", err));
  }, touchMs);
  toucher.unref();

  let touches = 0;
  /** The guest, with its host, if the policy lets the user do `action` to it (watch its screen, or operate it). */
  const allowedGuest = (user: SessionUser, guestId: string, action: Action) =>
    db.guest.findFirst({ where: { id: guestId, ...ownedWhere(user, action) }, select: { host: { select: { endpoint: true } } } });

  async function touch(): Promise<void> {
    await touchSessions(db, [...live.keys()]);
    // A console lasts as long as the login that opened it, and only while the guest is still the viewer's to see.
    const allowed = new Map<string, Promise<boolean>>();
    for (const session of [...live.values()]) {
      if (!session.login) continue;
      const { via, secret, guestId, action } = session.login;
      const key = `${via}\n${secret}\n${guestId}\n${action}`;
      if (!allowed.has(key)) {
        allowed.set(
          key,
          loginUser(via, secret).then(async (user) => Boolean(user && (await allowedGuest(user, guestId, action)))),
        );
      }
      if (!(await allowed.get(key))) session.close(CLOSE_CODES.accessEnded, `Your login ended, or this guest is no longer yours to ${action === "watch" ? "watch" : "operate"}; log in again.`);
    }
    const shares = new Set([...live.values()].flatMap((s) => (s.shareId ? [s.shareId] : [])));
    for (const shareId of shares) {
      const check = await checkShare(db, shareId);
      if (check.ok) continue;
      for (const session of live.values()) {
        if (session.shareId === shareId) session.close(CLOSE_CODES.shareEnded, `The view-only link was ${check.reason}.`);
      }
    }
    // Rows of a web process that died: once a minute is plenty.
    if (++touches % 12 === 0) await closeStaleSessions(db);
  }

  /** The user a login still stands for: a session's, or an API token's (server/auth/api-tokens.ts); null once it ended. */
  const loginUser = (via: "session" | "token", secret: string) => (via === "token" ? tokenUser(db, secret) : userForSession(db, secret));

  async function handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // The raw path, as onUpgrade saw it: a URL would resolve "..", "%2e%2e" and the like first.
    const raw = req.url ?? "";
    const at = raw.indexOf("?");
    const [pathname, query] = at < 0 ? [raw, ""] : [raw.slice(0, at), raw.slice(at + 1)];
    const target = parseConsolePath(pathname);
    if (!target?.guestId) return refuseUpgrade(socket, 404, "No such console.");
    const { kind, guestId } = target;
    if (!isWebSocketHandshake(req)) return refuseUpgrade(socket, 400, "This address takes websocket connections only.");
    // An API client (the CLI) shows its token; a browser cannot send that header, so the
    // Origin check, which guards the cookie against other sites, is for the cookie's logins.
    const bearer = bearerToken(req.headers.authorization);
    if (!bearer && !sameOrigin(req)) return refuseUpgrade(socket, 403, "Console connections must come from this dashboard's own pages.");

    const ticket = await consumeTicket(db, new URLSearchParams(query).get("ticket"), { guestId, kind });
    if (!ticket.ok) return refuseUpgrade(socket, 401, `${TICKET_REFUSALS[ticket.reason]}; open the console again.`);

    // Who it is for: the user of this very request, or a view-only link that still works.
    let who: string;
    let login: LiveSession["login"] = null;
    let guest: { host: { endpoint: string } } | null;
    if (ticket.userId) {
      const via = bearer ? "token" : "session";
      const secret = bearer ?? sessionSecretOf(req);
      const user = secret ? await loginUser(via, secret) : null;
      if (!user) return refuseUpgrade(socket, 401, bearer ? "The token is unknown, revoked or expired." : "Log in first.");
      if (user.id !== ticket.userId) return refuseUpgrade(socket, 403, "This console ticket belongs to someone else.");
      // A view-only ticket needs the right to watch; any other, to operate the guest.
      const action: Action = ticket.viewOnly ? "watch" : "operate";
      guest = await allowedGuest(user, guestId, action);
      if (!guest) return refuseUpgrade(socket, 404, `This guest does not exist, or you may not ${action} it.`);
      who = user.username;
      login = { via, secret: secret!, guestId, action };
    } else if (ticket.shareId) {
      const share = await checkShare(db, ticket.shareId);
      if (!share.ok) return refuseUpgrade(socket, 403, `This view-only link was ${share.reason}.`);
      if (share.share.guestId !== guestId) return refuseUpgrade(socket, 403, "This view-only link is for another guest.");
      who = `view-only link ${share.share.id.slice(0, 8)}`;
      guest = await db.guest.findUnique({ where: { id: guestId }, select: { host: { select: { endpoint: true } } } });
      if (!guest) return refuseUpgrade(socket, 404, "This guest no longer exists.");
    } else {
      return refuseUpgrade(socket, 401, "This console ticket belongs to no one.");
    }
    const viewOnly = ticket.viewOnly || Boolean(ticket.shareId);

    let stream: Duplex;
    let password: string | null = null;
    try {
      const agent = new AgentClient(guest.host.endpoint);
      if (kind === "vnc") ({ stream, password } = await agent.openVnc(guestId));
      else stream = await agent.openSerial(guestId);
    } catch (err) {
      const error = toGuesthouseError(err);
      return refuseUpgrade(socket, error.httpStatus, error.message);
    }
    // The browser may have gone while we waited; never keep a guest stream without it.
    let upgraded = false;
    socket.once("close", () => {
      if (!upgraded) stream.destroy();
    });
    if (socket.destroyed) return void stream.destroy();

    wss.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      relay(ws, stream, { kind, guestId, who, viewOnly, password, userId: ticket.userId, shareId: ticket.shareId, login });
    });
  }

  function relay(
    ws: WebSocket,
    guestStream: Duplex,
    s: {
      kind: ConsoleKind;
      guestId: string;
      who: string;
      viewOnly: boolean;
      password: string | null;
      userId: string | null;
      shareId: string | null;
      login: LiveSession["login"];
    },
  ): void {
    const started = Date.now();
    const label = `${s.kind === "vnc" ? "console" : "serial"}: ${s.who} on guest ${s.guestId}${s.viewOnly ? " (view-only)" : ""}`;
    const browser = createWebSocketStream(ws);
    let sessionId: string | null = null;
    let ended: string | null = null;
    /** Why the websocket is closing, if not because the viewer left; recorded when it has closed. */
    let closing: string | null = null;
    const closeWith = (code: number, reason: string) => {
      closing ??= reason;
      guestStream.destroy();
      ws.close(code, reason);
    };
    void startSession(db, { guestId: s.guestId, userId: s.userId, shareId: s.shareId, kind: s.kind, viewOnly: s.viewOnly })
      .then((id) => {
        sessionId = id;
        if (ended !== null) return endSession(db, id, ended);
        live.set(id, { shareId: s.shareId, login: s.login, close: closeWith });
      })
      .catch((err) => console.error(`${label}: could not record the session:`, err));

    const finish = (why: string) => {
      if (ended !== null) return;
      ended = why;
      guestStream.destroy();
      browser.destroy();
      if (sessionId) {
        live.delete(sessionId);
        void endSession(db, sessionId, why).catch((err) => console.error(`${label}: could not record the end:`, err));
      }
      log(`${label} closed after ${Date.now() - started} ms (${why})`);
    };

    // The password goes first, as the one text message; the guest's bytes follow as binary.
    if (s.kind === "vnc") ws.send(JSON.stringify({ password: s.password ?? "" }));
    guestStream.pipe(browser);
    if (s.viewOnly && s.kind === "vnc") {
      const filter = rfbViewOnlyStream();
      browser.pipe(filter).pipe(guestStream);
      filter.once("error", (err) => {
        // The guest hears nothing more; the close frame still reaches the browser.
        log(`${label}: view-only filter: ${err.message}`);
        closeWith(CLOSE_CODES.protocol, "The view-only console sent something it may not.");
      });
    } else if (s.viewOnly) {
      // A view-only serial console: the port's output only; what the browser sends is read and dropped.
      browser.on("data", () => {});
    } else {
      browser.pipe(guestStream);
    }
    guestStream.once("end", () => {
      closing ??= "The guest's console closed (the guest stopped or restarted).";
    });
    ws.once("close", (code) => {
      if (!closing) log(`${label}: the browser closed with code ${code}`);
      finish(closing ?? "The viewer closed it.");
    });
    guestStream.once("error", (err) => finish(`guest stream error: ${err.message}`));
    browser.on("error", () => {
      // The websocket's own close event reports the end.
    });
    log(`${label} opened`);
  }

  return {
    /** Returns true when the request was for a console (handled or refused). */
    onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
      const pathname = (req.url ?? "").split("?")[0] ?? "";
      if (!parseConsolePath(pathname)) return false;
      // Node takes its own error listener off a socket it hands to 'upgrade', and the checks
      // below take a while: a browser that resets the connection meanwhile would make the
      // refusal's write throw as an uncaught error. Such a socket is simply gone (ws adds
      // its own listener once it owns the socket).
      socket.on("error", () => socket.destroy());
      handleUpgrade(req, socket, head).catch((err) => {
        const error = toGuesthouseError(err);
        console.error("console: upgrade failed:", error.detail ?? error.message);
        refuseUpgrade(socket, error.httpStatus, error.message);
      });
      return true;
    },
    close(): void {
      clearInterval(toucher);
      for (const session of live.values()) session.close(CLOSE_CODES.goingAway, "The web server is stopping.");
      for (const client of wss.clients) client.terminate();
      wss.close();
    },
  };
}

/** The headers ws needs to complete the upgrade, checked before the guest stream is opened. */
function isWebSocketHandshake(req: http.IncomingMessage): boolean {
  return (
    req.method === "GET" &&
    (req.headers.upgrade ?? "").toLowerCase() === "websocket" &&
    req.headers["sec-websocket-version"] === "13" &&
    /^[A-Za-z0-9+/]{22}==$/.test(req.headers["sec-websocket-key"] ?? "")
  );
}

/** Same check browsers make for CORS: the Origin's host must be the one asked. */
function sameOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
