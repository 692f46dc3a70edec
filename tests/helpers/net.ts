/** Loopback helpers for tests. */
import net from "node:net";
import WebSocket from "ws";

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.once("error", reject);
  });
}

/** Whether something accepts a TCP connection on 127.0.0.1:port. */
export function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Tries a websocket upgrade: 101 once it opened (with `firstMessage`, once data came
 * through too), else the HTTP status the server refused it with. Closes it either way;
 * fails after 10 s without an answer.
 */
export function upgradeStatus(url: string, headers: Record<string, string>, { firstMessage = false } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 10_000 });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no answer from ${url.split("?")[0]} within 10 s`));
    }, 10_000);
    const opened = () => {
      clearTimeout(timer);
      ws.close();
      resolve(101);
    };
    ws.once("open", () => (firstMessage ? ws.once("message", opened) : opened()));
    ws.once("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("error", (err) => {
      if (err.message.includes("Unexpected server response")) return;
      clearTimeout(timer);
      reject(err);
    });
  });
}
