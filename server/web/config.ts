/** The web server's configuration, from the environment, validated once. */
import path from "node:path";
import { z } from "zod";

const schema = z.object({
  GUESTHOUSE_HOST: z.string().min(1).default("127.0.0.1"),
  GUESTHOUSE_PORT: z.coerce.number().int().min(1).max(65535).default(3000),
  GUESTHOUSE_DATA_DIR: z.string().min(1).default(".data"),
  GUESTHOUSE_AGENT_SOCKET: z.string().min(1).optional(),
  /** How long a request (but an upload's body) may take to arrive, in seconds. */
  GUESTHOUSE_REQUEST_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  /** How long the audit trail keeps a change, in days. */
  GUESTHOUSE_AUDIT_DAYS: z.coerce.number().int().min(1).max(36500).default(365),
  /** How often the web fetches each agent's metrics for the history, in ms (default 10000). */
  GUESTHOUSE_METRICS_POLL_MS: z.coerce.number().int().min(500).max(300_000).default(10_000),
  NODE_ENV: z.string().optional(),
});

export interface WebConfig {
  host: string;
  port: number;
  dev: boolean;
  /** The endpoint of this machine's agent, recorded as the "local" host. */
  localAgentEndpoint: string;
  /** How long a request's headers and body (an upload's body aside) may take to arrive. */
  requestMs: number;
  /** How long the audit trail keeps a change. */
  auditDays: number;
  /** How often the metrics collector asks each agent (server/web/metrics/collector.ts), ms. */
  metricsPollMs: number;
}

export function loadWebConfig(env: NodeJS.ProcessEnv = process.env): WebConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`Web configuration is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  const e = parsed.data;
  const socket = path.resolve(e.GUESTHOUSE_AGENT_SOCKET ?? path.join(e.GUESTHOUSE_DATA_DIR, "agent.sock"));
  return {
    host: e.GUESTHOUSE_HOST,
    port: e.GUESTHOUSE_PORT,
    dev: e.NODE_ENV === "development",
    localAgentEndpoint: `unix:${socket}`,
    requestMs: e.GUESTHOUSE_REQUEST_SECONDS * 1000,
    auditDays: e.GUESTHOUSE_AUDIT_DAYS,
    metricsPollMs: e.GUESTHOUSE_METRICS_POLL_MS,
  };
}
