/**
 * The error tree. Every error that crosses a boundary (agent API, server action,
 * console bridge) is a GuesthouseError with a stable code from ERROR_CODES.
 * `message` is for the person: what happened and what to do. `detail` is for the
 * operator's log and is never shown on a page.
 *
 *   GuesthouseError
 *    ├─ code "invalid-input"      the request was malformed or out of range (400)
 *    ├─ code "unauthenticated"    no valid session or ticket (401)
 *    ├─ code "forbidden"          the user may not do this (403)
 *    ├─ code "not-found"          no such guest, disk, ISO (404)
 *    ├─ code "conflict"           duplicate name, action not allowed in this state, busy (409)
 *    ├─ code "stale"              a change made from an older version of the thing (HTTP If-Match) (412)
 *    ├─ code "over-quota"         the change would take the team past a quota (403); see QuotaError
 *    ├─ code "too-large"          a file over the upload limit or the free space (413)
 *    ├─ code "qemu-failed"        QEMU refused to start or died; detail holds its output (502)
 *    ├─ code "qmp-error"          QEMU answered a QMP command with an error (502)
 *    ├─ code "qmp-disconnected"   the QMP socket closed while a call was pending (502)
 *    ├─ code "qmp-state"          a QMP call was made in the wrong protocol state (500)
 *    ├─ code "agent-unreachable"  the web could not reach the host agent (503)
 *    ├─ code "busy"               too much of the same at once; try again shortly (429)
 *    ├─ code "timeout"            an operation did not finish in time (504)
 *    └─ code "internal"           a bug; detail holds the cause (500)
 */
import type { QuotaRefusal } from "./types";

export const ERROR_CODES = {
  "invalid-input": 400,
  unauthenticated: 401,
  forbidden: 403,
  "not-found": 404,
  conflict: 409,
  stale: 412,
  "over-quota": 403,
  "too-large": 413,
  "qemu-failed": 502,
  "qmp-error": 502,
  "qmp-disconnected": 502,
  "qmp-state": 500,
  "agent-unreachable": 503,
  busy: 429,
  timeout: 504,
  internal: 500,
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

export class GuesthouseError extends Error {
  readonly code: ErrorCode;
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, detail?: string) {
    super(message);
    this.name = "GuesthouseError";
    this.code = code;
    this.detail = detail;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; detail?: string } {
    return { code: this.code, message: this.message, ...(this.detail ? { detail: this.detail } : {}) };
  }
}

/** A quota refused a change: `refusal` names the quota, its use and its limit, so the page can offer to ask for more. */
export class QuotaError extends GuesthouseError {
  constructor(
    message: string,
    readonly refusal: QuotaRefusal,
  ) {
    super("over-quota", message);
  }

  override toJSON() {
    return { ...super.toJSON(), quota: this.refusal };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

/** Wraps anything thrown into a GuesthouseError, keeping the original for the log. */
export function toGuesthouseError(err: unknown): GuesthouseError {
  if (err instanceof GuesthouseError) return err;
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  return new GuesthouseError("internal", "Something went wrong on the server. The details are in its log.", detail);
}
