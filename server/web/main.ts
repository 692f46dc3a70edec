/**
 * The web server: Next.js behind a plain Node HTTP server, so the console
 * websocket lives on the same origin under /ws/ (a path that is no page route;
 * see NOTES on Next's own upgrade listener). Run with `tsx server/web/main.ts`.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import next from "next";
import { createConsoleBridge } from "../console/bridge";
import { db } from "../db/client";
import { giveHeapRoom, WEB_HEAP_GROWING_PERCENT } from "../heap";
import { loadWebConfig } from "./config";
import { contentSecurityPolicy } from "./csp";
import { stateHub } from "./state-hub";
import { pruneAudit } from "./audit";
import { pruneHolds } from "./quotas";
import { CLIENT_ADDRESS_HEADER } from "./client-address";
import { reconcileTasks, settleTask } from "./tasks";
import { handleUpload, isUploadRequest } from "./uploads";
import { MetricsCollector } from "./metrics/collector";

async function main(): Promise<void> {
  // Next.js keeps ~63 MB live: up to ~130 MB before a full collection (see server/heap.ts).
  giveHeapRoom(WEB_HEAP_GROWING_PERCENT);
  const config = loadWebConfig();
  const app = next({ dev: config.dev, dir: process.cwd(), hostname: config.host, port: config.port });
  const handle = app.getRequestHandler();
  await app.prepare();

  const bridge = createConsoleBridge({ db });
  // The task record follows every host for as long as the web runs, so a conversion
  // finishing while no page is open still gets its result recorded and applied.
  const stopTasks = stateHub.subscribeTasks((hostId, task) => settleTask(hostId, task));
  reconcileTasks({ atStartup: true }).catch((err) => console.error("web: could not reconcile tasks:", err));
  // The audit trail keeps GUESTHOUSE_AUDIT_DAYS: older changes go at start and then daily.
  const prune = () =>
    void pruneAudit(config.auditDays).then(
      (n) => n > 0 && console.log(`web: removed ${n} audit record(s) older than ${config.auditDays} days`),
      (err) => console.error("web: could not prune the audit trail:", err),
    );
  prune();
  setInterval(prune, 24 * 3600_000).unref();
  // Quota holds of changes a dead web left half-way stop counting when they expire; their rows go hourly.
  setInterval(() => void pruneHolds().catch((err) => console.error("web: could not prune quota holds:", err)), 3600_000).unref();
  // Every host's metrics go into the history for as long as the web runs (server/web/metrics/).
  const metrics = new MetricsCollector(config.metricsPollMs).start();
  // An agent that went away and came back may have restarted and forgotten its tasks:
  // their rows are settled as soon as it answers again.
  const stopHosts = stateHub.subscribe((changed) => {
    if (changed.some((key) => key.startsWith("host:"))) reconcileTasks().catch((err) => console.error("web: could not reconcile tasks:", err));
  });
  // Time limits on connections are checked this often (Node's default, 30 s, would let a
  // header that never ends hold its socket that long past the limit).
  const server = http.createServer({ connectionsCheckingInterval: Math.min(1000, config.requestMs) }, (req, res) => {
    // Uploads stream to the agent here; Next would buffer a request body.
    // Where it came from, for the account page's sessions: the socket's word, never the client's.
    req.headers[CLIENT_ADDRESS_HEADER] = req.socket.remoteAddress ?? "";
    if (isUploadRequest(req)) return handleUpload(req, res);
    // Any other request's body arrives within the limit, or the connection goes: a slow
    // body (a login form sent a byte a minute) cannot hold a socket for ever, also after
    // Next has answered without reading it (Node then keeps reading it for the next request).
    if (!req.complete) {
      const socket = req.socket;
      const cut = setTimeout(() => socket.destroy(), config.requestMs);
      // Taken off the socket again once the body is in: a keep-alive connection carries
      // many requests, and a listener left per request would pile up on it.
      const clear = () => {
        clearTimeout(cut);
        socket.off("close", clear);
      };
      req.once("end", clear);
      socket.once("close", clear);
    }
    // A Content-Security-Policy with a nonce per response: Next reads the nonce from the
    // request's policy header and puts it on every script it renders; nothing else runs.
    const policy = contentSecurityPolicy(randomBytes(16).toString("base64"), config.dev);
    req.headers["content-security-policy"] = policy;
    res.setHeader("Content-Security-Policy", policy);
    handle(req, res).catch((err) => {
      console.error("web: request failed:", err);
      if (!res.headersSent) res.writeHead(500).end("Internal error");
    });
  });
  // Node's own limit on a whole request would end a big upload; every other request has its
  // own (above), and uploads close stalled connections themselves (server/web/uploads.ts).
  // Headers always arrive within the limit.
  server.requestTimeout = 0;
  server.headersTimeout = config.requestMs;
  server.on("upgrade", (req, socket, head) => {
    if (bridge.onUpgrade(req, socket, head)) return;
    // In development Next's own listener serves HMR under /_next/; anything else is refused.
    if (!config.dev || !(req.url ?? "").startsWith("/_next/")) socket.destroy();
  });

  // A port taken (by another program, or a guest's port forward) ends the web with why,
  // instead of a server that runs but does not listen.
  server.once("error", (err: NodeJS.ErrnoException) => {
    const where = `${config.host}:${config.port}`;
    const why =
      err.code === "EADDRINUSE"
        ? `${where} is taken by another program. Stop it, or set GUESTHOUSE_PORT to a free port.`
        : err.code === "EACCES"
          ? `${where} needs privileges this process lacks. Choose a port above 1023 (GUESTHOUSE_PORT).`
          : `${where}: ${err.message}`;
    console.error(`web: cannot listen: ${why}`);
    process.exit(1);
  });
  server.listen(config.port, config.host, () => {
    const shown = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
    console.log(`web: Guesthouse is at http://${shown}:${config.port}/`);
    if (process.env.GUESTHOUSE_LOGIN_HINT) console.log(`web: ${process.env.GUESTHOUSE_LOGIN_HINT}`);
  });

  const stop = () => {
    stopTasks();
    stopHosts();
    bridge.close();
    server.close();
    // A tick being written finishes first (it is one transaction per chunk; nothing half-done is left either way).
    void metrics
      .stop()
      .catch(() => {})
      .then(() => db.$disconnect())
      .finally(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((err) => {
  console.error("web:", err);
  process.exit(1);
});
