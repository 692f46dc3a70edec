/**
 * How every REST API route (`app/api/v1/…`) receives a request and answers: who is asking
 * (an API token in `Authorization: Bearer`, or the browser's session, whose writes must
 * come from this dashboard's own pages), the body (JSON only, 1 MiB at most, validated
 * with the route's zod schema: an unknown field is refused), and every error as
 * `application/problem+json` (RFC 9457) with a stable code and the field at fault.
 * Access itself is the policy's, through the same operations the pages use.
 */
import type { z } from "zod";
import { bearerUser } from "../../auth/api-tokens";
import { holdsScope } from "../../auth/policy";
import { overTls, type SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import { GuesthouseError, toGuesthouseError } from "../../domain/errors";
import { PROBLEM_TYPE, problemBody } from "./problem";
import { currentUser } from "../session";
import { ENDPOINTS, type Endpoint, type OperationId } from "./endpoints";

/** The largest request body taken. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** An error as problem+json; `status` overrides the code's own (412, 413, 428). */
export function problem(error: GuesthouseError, extra: { field?: string; status?: number } = {}): Response {
  const body = problemBody(error, extra);
  return new Response(JSON.stringify(body), { status: body.status, headers: { "content-type": PROBLEM_TYPE, "cache-control": "no-store" } });
}

/**
 * An address on this dashboard as its callers reach it: over TLS when the request came
 * that way (its own socket, or a reverse proxy's X-Forwarded-Proto), and `ws`/`wss` for a
 * websocket path.
 */
export function publicUrl(request: Request, path: string, websocket = false): string {
  const url = new URL(path, request.url);
  const tls = overTls(Object.fromEntries(request.headers), url.protocol === "https:");
  url.protocol = websocket ? (tls ? "wss:" : "ws:") : tls ? "https:" : "http:";
  return url.href;
}

/** A JSON answer. */
export function json(data: unknown, init: { status?: number; headers?: Record<string, string> } = {}): Response {
  return new Response(JSON.stringify(data), { status: init.status ?? 200, headers: { "content-type": "application/json", "cache-control": "no-store", ...init.headers } });
}

/** A request body that did not pass its schema: the first problem, with its field. */
class BodyError extends GuesthouseError {
  constructor(
    message: string,
    readonly field?: string,
    readonly status?: number,
  ) {
    super(status === 413 ? "too-large" : "invalid-input", message);
  }
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Who asks: a token, or the browser's session (whose writes must come from this dashboard's own pages). */
async function caller(request: Request): Promise<SessionUser> {
  const authorization = request.headers.get("authorization");
  if (authorization !== null) return bearerUser(db, authorization);
  const user = await currentUser();
  if (!user) throw new GuesthouseError("unauthenticated", "Send an API token (Authorization: Bearer gh_…), or log in.");
  if (user.disabled) throw new GuesthouseError("forbidden", "Your account can do nothing until you set it up on your account page.");
  if (!SAFE_METHODS.has(request.method)) {
    const origin = request.headers.get("origin");
    let host: string | null = null;
    try {
      host = origin ? new URL(origin).host : null;
    } catch {
      host = null;
    }
    if (host === null || host !== request.headers.get("host")) throw new GuesthouseError("forbidden", "A change with the browser's session must come from this dashboard's own pages.");
  }
  return user;
}

/** The body, parsed and checked against `schema`. */
async function bodyOf<T>(request: Request, schema: z.ZodType<T>): Promise<T> {
  const length = Number(request.headers.get("content-length") ?? "0");
  if (length > MAX_BODY_BYTES) throw new BodyError(`The body is larger than ${MAX_BODY_BYTES} bytes.`, undefined, 413);
  if (!/^application\/json\b/i.test(request.headers.get("content-type") ?? "")) throw new BodyError("Send the body as JSON (Content-Type: application/json).");
  const text = await request.text();
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) throw new BodyError(`The body is larger than ${MAX_BODY_BYTES} bytes.`, undefined, 413);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BodyError("The body is not valid JSON.");
  }
  return checked(schema, value, "field");
}

/** `value` checked with `schema`; the first problem, with its field, as the error. */
function checked<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length ? issue.path.join(".") : issue.code === "unrecognized_keys" ? issue.keys.join(", ") : undefined;
  const unknown = issue.code === "unrecognized_keys" ? `Unknown ${what}${issue.keys.length === 1 ? "" : "s"}: ${issue.keys.join(", ")}.` : null;
  throw new BodyError(unknown ?? `${field ? `${field}: ` : ""}${issue.message}`, field);
}

type Params = { params: Promise<Record<string, string>> };

type BodyOf<K extends OperationId> = (typeof ENDPOINTS)[K] extends { body: z.ZodType<infer B> } ? B : undefined;
type QueryOf<K extends OperationId> = (typeof ENDPOINTS)[K] extends { query: z.ZodType<infer Q> } ? Q : Record<string, never>;

export interface ApiContext<K extends OperationId> {
  request: Request;
  user: SessionUser;
  params: Record<string, string>;
  body: BodyOf<K>;
  query: QueryOf<K>;
  /** The request's If-Match, for an operation that honours it. */
  ifMatch: string | undefined;
}

/**
 * A route handler for the operation `op` of the endpoint table (endpoints.ts): it
 * authenticates, counts the request against the caller's rate, checks the token's scope
 * (through the policy), reads the query and the body with the table's schemas, runs
 * `handle`, and turns anything thrown into a problem. Another team's things are
 * "not found", as on the pages.
 */
export function apiRoute<K extends OperationId>(op: K, handle: (ctx: ApiContext<K>) => Promise<Response>): (request: Request, context: Params) => Promise<Response> {
  const endpoint: Endpoint = ENDPOINTS[op];
  return async (request, context) => {
    let limited: Response | null = null;
    try {
      const user = await caller(request);
      limited = rateLimited(user);
      if (limited) return limited;
      if (!holdsScope(user, endpoint.scope)) throw new GuesthouseError("forbidden", `This needs a token with the ${endpoint.scope} scope.`);
      const query = readQuery(request, endpoint.query) as QueryOf<K>;
      const body = (endpoint.body ? await bodyOf(request, endpoint.body) : undefined) as BodyOf<K>;
      const ifMatch = endpoint.ifMatch ? (request.headers.get("if-match") ?? undefined) : undefined;
      return await handle({ request, user, params: await context.params, body, query, ifMatch });
    } catch (err) {
      const error = toGuesthouseError(err);
      if (error.code === "internal") console.error(`api: ${request.method} ${new URL(request.url).pathname} failed:`, error.detail ?? error.message);
      return problem(error, err instanceof BodyError ? { field: err.field, status: err.status } : {});
    }
  };
}

/** The query string, checked with the operation's schema (none: it must be empty). */
function readQuery(request: Request, schema: z.ZodType | undefined): unknown {
  const params = new URL(request.url).searchParams;
  const raw: Record<string, string> = {};
  for (const [name, value] of params) {
    if (name in raw) throw new BodyError(`${name} is given twice.`, name);
    raw[name] = value;
  }
  if (!schema) {
    const names = Object.keys(raw);
    if (names.length) throw new BodyError(`Unknown query parameter${names.length === 1 ? "" : "s"}: ${names.join(", ")}.`, names.join(", "));
    return {};
  }
  return checked(schema, raw, "query parameter");
}

// ——— Rate limits ———

/**
 * Requests per minute a token (or a browser session) may make, as a token bucket that
 * holds a minute's worth: bursts up to it, then this rate on average. Kept in this web
 * process (each process of several counts its own).
 */
const ratePerMinute = (): number => {
  const raw = Number(process.env.GUESTHOUSE_API_RATE ?? "");
  return Number.isInteger(raw) && raw > 0 ? raw : DEFAULT_RATE_PER_MINUTE;
};
export const DEFAULT_RATE_PER_MINUTE = 1200;
/** Buckets left untouched this long are forgotten (they are full again by then). */
const BUCKET_IDLE_MS = 5 * 60_000;

const globalForRates = globalThis as unknown as { guesthouseApiRates?: Map<string, { tokens: number; at: number }> };
const buckets: Map<string, { tokens: number; at: number }> = (globalForRates.guesthouseApiRates ??= new Map());
let lastSweep = 0;

/** A 429 with Retry-After when `user`'s bucket is empty; null (and one request taken) otherwise. */
function rateLimited(user: SessionUser): Response | null {
  const rate = ratePerMinute();
  const now = Date.now();
  if (now - lastSweep > BUCKET_IDLE_MS) {
    lastSweep = now;
    for (const [key, b] of buckets) if (now - b.at > BUCKET_IDLE_MS) buckets.delete(key);
  }
  // A token's requests share its bucket; a browser session's, its session's.
  const key = user.sessionId;
  const bucket = buckets.get(key) ?? { tokens: rate, at: now };
  bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) * rate) / 60_000);
  bucket.at = now;
  buckets.set(key, bucket);
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return null;
  }
  const retryAfter = Math.max(1, Math.ceil(((1 - bucket.tokens) * 60) / rate));
  const response = problem(new GuesthouseError("busy", `Too many requests: ${rate} a minute at most. Try again in ${retryAfter} s.`));
  response.headers.set("retry-after", String(retryAfter));
  return response;
}
