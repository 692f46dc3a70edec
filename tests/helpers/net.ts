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

/** The ports a host forwards to guests unless configured otherwise (GUESTHOUSE_FORWARD_PORTS). */
export const FORWARD_PORTS = { first: 20000, last: 29999 } as const;

/** A port of the forward range that nothing on 127.0.0.1 listens on now (tried from a random start). */
export async function freeForwardPort(): Promise<number> {
  const span = FORWARD_PORTS.last - FORWARD_PORTS.first + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = FORWARD_PORTS.first + ((start + i) % span);
    if (!(await connects(port))) return port;
  }
  throw new Error("no free port in the forward range");
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
