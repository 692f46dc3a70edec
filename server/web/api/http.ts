/**
 * How every REST API route (`app/api/v1/…`) receives a request and answers: who is asking
 * (an API token in `Authorization: Bearer`, or the browser's session, whose writes must
 * come from this dashboard's own pages), the body (JSON only, 1 MiB at most, validated
 * with the route's zod schema: an unknown field is refused), and every error as
 * `application/problem+json` (RFC 9457) with a stable code and the field at fault.
 * Access itself is the policy's, through the same operations the pages use.
 */
import type { z } from "zod";
import { tokenUser } from "../../auth/api-tokens";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import { ERROR_CODES, GuesthouseError, QuotaError, toGuesthouseError, type ErrorCode } from "../../domain/errors";
import { currentUser } from "../session";

/** The largest request body taken. */
export const MAX_BODY_BYTES = 1024 * 1024;

const TITLES: Record<ErrorCode, string> = {
  "invalid-input": "The request is not valid",
  unauthenticated: "Not authenticated",
  forbidden: "Not allowed",
  "not-found": "Not found",
  conflict: "Conflict",
  "over-quota": "Over a quota",
  "too-large": "Too large",
  "qemu-failed": "QEMU failed",
  "qmp-error": "QEMU refused",
  "qmp-disconnected": "QEMU went away",
  "qmp-state": "QEMU was not ready",
  "agent-unreachable": "The host cannot be reached",
  busy: "Busy",
  timeout: "Timed out",
  internal: "Internal error",
};

/** An error as problem+json; `status` overrides the code's own (412, 413, 428). */
export function problem(error: GuesthouseError, extra: { field?: string; status?: number } = {}): Response {
  const status = extra.status ?? ERROR_CODES[error.code];
  const body = {
    type: `urn:guesthouse:problem:${error.code}`,
    title: TITLES[error.code],
    status,
    detail: error.message,
    code: error.code,
    ...(extra.field ? { field: extra.field } : {}),
    ...(error instanceof QuotaError ? { quota: error.refusal } : {}),
  };
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/problem+json", "cache-control": "no-store" } });
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
  if (authorization !== null) {
    const match = /^Bearer\s+(\S{1,200})$/i.exec(authorization);
    const user = match ? await tokenUser(db, match[1]) : null;
    if (!user) throw new GuesthouseError("unauthenticated", "The token is unknown, revoked or expired. Make a new one on your account page.");
    return user;
  }
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
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length ? issue.path.join(".") : issue.code === "unrecognized_keys" ? issue.keys.join(", ") : undefined;
  const what = issue.code === "unrecognized_keys" ? `Unknown field${issue.keys.length === 1 ? "" : "s"}: ${issue.keys.join(", ")}.` : issue.message;
  throw new BodyError(`${field && issue.code !== "unrecognized_keys" ? `${field}: ` : ""}${what}`, field);
}

type Params = { params: Promise<Record<string, string>> };

/**
 * A route handler: authenticates, reads the body with `body` (when given), runs `handle`,
 * and turns anything thrown into a problem. Another team's things are "not found", as on
 * the pages.
 */
export function apiRoute<B = undefined>(
  handle: (ctx: { request: Request; user: SessionUser; params: Record<string, string>; body: B }) => Promise<Response>,
  options: { body?: z.ZodType<B> } = {},
): (request: Request, context: Params) => Promise<Response> {
  return async (request, context) => {
    try {
      const user = await caller(request);
      const body = (options.body ? await bodyOf(request, options.body) : undefined) as B;
      return await handle({ request, user, params: await context.params, body });
    } catch (err) {
      const error = toGuesthouseError(err);
      if (error.code === "internal") console.error(`api: ${request.method} ${new URL(request.url).pathname} failed:`, error.detail ?? error.message);
      return problem(error, err instanceof BodyError ? { field: err.field, status: err.status } : {});
    }
  };
}
