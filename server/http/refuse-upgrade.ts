/**
 * Refuses an HTTP upgrade on its raw socket with a real status and a JSON body
 * `{ message }` (ws's abortHandshake does the same for the websockets it owns), plus
 * the error's `code` when the other side is our own agent client. Used by the agent
 * (console streams) and the web's console bridge.
 */
import http from "node:http";
import type { Duplex } from "node:stream";

export function refuseUpgrade(socket: Duplex, status: number, message: string, code?: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(code ? { code, message } : { message });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Error"}\r\nConnection: close\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
