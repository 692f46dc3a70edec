/**
 * The console bridge: `/ws/console/<guest id>?ticket=…` on the web's own origin.
 *
 * Before a single byte is relayed it checks, in order: the path, the Origin (no
 * cross-site websockets), the login session, and the ticket (consumed atomically,
 * bound to this user and this guest). Anything else gets a real HTTP status and
 * the socket is closed. The target is looked up server-side: the browser never
 * names a host, a port or a path. Streams are piped, so a slow side pauses the
 * fast one in both directions.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, createWebSocketStream } from "ws";
import { AgentClient } from "../agent-client";
import { cookieFromHeader, SESSION_COOKIE, userForSession } from "../auth/sessions";
import type { PrismaClient } from "../db/client";
import { toGuesthouseError } from "../domain/errors";
import { refuseUpgrade } from "../http/refuse-upgrade";
import { CONSOLE_WS_PATH } from "../domain/types";
import { consumeTicket } from "./tickets";

const PATH = new RegExp(`^${CONSOLE_WS_PATH}/([a-z0-9]{8,64})$`);

export interface BridgeOptions {
  db: PrismaClient;
  /** Logs one line per session (who, which guest, how it ended). */
  log?: (line: string) => void;
}

export function createConsoleBridge({ db, log = console.log }: BridgeOptions) {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4 * 1024 * 1024 });

  async function handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const match = PATH.exec(url.pathname);
    if (!match) return refuseUpgrade(socket, 404, "No such console.");
    if (!isWebSocketHandshake(req)) return refuseUpgrade(socket, 400, "This address takes websocket connections only.");
    const guestId = match[1]!;

    if (!sameOrigin(req)) return refuseUpgrade(socket, 403, "Console connections must come from this dashboard's own pages.");

    const user = await userForSession(db, cookieFromHeader(req.headers.cookie, SESSION_COOKIE));
    if (!user) return refuseUpgrade(socket, 401, "Log in first.");

    const ticket = await consumeTicket(db, url.searchParams.get("ticket"), guestId);
    if (!ticket.ok) return refuseUpgrade(socket, 401, `The console ticket is ${ticket.reason}; open the console again.`);
    if (ticket.userId !== user.id) return refuseUpgrade(socket, 403, "This console ticket belongs to someone else.");

    const guest = await db.guest.findUnique({ where: { id: guestId }, select: { host: { select: { endpoint: true } } } });
    if (!guest) return refuseUpgrade(socket, 404, "This guest no longer exists.");

    let vnc: Duplex;
    try {
      vnc = await new AgentClient(guest.host.endpoint).openVnc(guestId);
    } catch (err) {
      const error = toGuesthouseError(err);
      return refuseUpgrade(socket, error.httpStatus, error.message);
    }
    // The browser may have gone while we waited; never keep a guest stream without it.
    let upgraded = false;
    socket.once("close", () => {
      if (!upgraded) vnc.destroy();
    });
    if (socket.destroyed) return void vnc.destroy();

    wss.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      const started = Date.now();
      const stream = createWebSocketStream(ws);
      vnc.pipe(stream);
      stream.pipe(vnc);
      const finish = (why: string) => {
        vnc.destroy();
        stream.destroy();
        log(`console: ${user.username} on guest ${guestId} closed after ${Date.now() - started} ms (${why})`);
      };
      ws.once("close", (code) => finish(`browser closed ${code}`));
      vnc.once("error", (err) => finish(`guest stream error: ${err.message}`));
      stream.on("error", () => {
        // The websocket's own close event reports the end.
      });
      log(`console: ${user.username} opened guest ${guestId}`);
    });
  }

  return {
    /** Returns true when the request was for the console (handled or refused). */
    onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
      const pathname = (req.url ?? "").split("?")[0] ?? "";
      if (pathname !== CONSOLE_WS_PATH && !pathname.startsWith(`${CONSOLE_WS_PATH}/`)) return false;
      handleUpgrade(req, socket, head).catch((err) => {
        const error = toGuesthouseError(err);
        console.error("console: upgrade failed:", error.detail ?? error.message);
        refuseUpgrade(socket, error.httpStatus, error.message);
      });
      return true;
    },
    close(): void {
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
