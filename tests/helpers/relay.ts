/**
 * An HTTP relay on a unix socket in front of a real agent's socket: it forwards every
 * request to the real agent, and for the request a hook picks does something first
 * (another writer takes a name), answers a failure itself, or forwards it and keeps the
 * agent's answer back (the caller then knows the agent did the work and its client did
 * not hear of it). Races and failures between the web and the agent are made with it.
 */
import http from "node:http";

/** What the relay does with one request (its body read): answer itself, hold the answer back, or (nothing) forward it. */
export type RelayHook = (req: http.IncomingMessage, body: Buffer) => { status: number; json: unknown } | "hold-answer" | void;

export interface Relay {
  server: http.Server;
  /** Resolves with each request whose answer was held back, once the agent has answered it. */
  held(): Promise<{ method: string; url: string; status: number }>;
  close(): void;
}

export function relay(agentSocket: string, socketPath: string, hook: () => RelayHook | null): Promise<Relay> {
  const heldQueue: Array<{ method: string; url: string; status: number }> = [];
  const waiters: Array<(h: { method: string; url: string; status: number }) => void> = [];
  const held = (h: { method: string; url: string; status: number }) => {
    const waiter = waiters.shift();
    if (waiter) waiter(h);
    else heldQueue.push(h);
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const own = hook()?.(req, body);
      if (own && own !== "hold-answer") {
        res.writeHead(own.status, { "content-type": "application/json" }).end(JSON.stringify(own.json));
        return;
      }
      const upstream = http.request({ socketPath: agentSocket, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        if (own === "hold-answer") {
          answer.resume();
          answer.on("end", () => held({ method: req.method ?? "", url: req.url ?? "", status: answer.statusCode ?? 0 }));
          return; // the client never hears
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on("error", () => res.destroy());
      upstream.end(body);
    });
  });
  return new Promise((resolve) =>
    server.listen(socketPath, () =>
      resolve({
        server,
        held: () => new Promise((r) => (heldQueue.length ? r(heldQueue.shift()!) : waiters.push(r))),
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      }),
    ),
  );
}
