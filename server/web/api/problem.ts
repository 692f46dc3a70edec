/**
 * An error as the API answers it: application/problem+json (RFC 9457) with a stable
 * `code`, the field at fault, and a quota's facts. Free of Next.js, so the web's own
 * upload handler (server/web/uploads.ts) answers the API's uploads the same way.
 */
import { ERROR_CODES, QuotaError, type ErrorCode, type GuesthouseError } from "../../domain/errors";

export const PROBLEM_TYPE = "application/problem+json";

const TITLES: Record<ErrorCode, string> = {
  "invalid-input": "The request is not valid",
  unauthenticated: "Not authenticated",
  forbidden: "Not allowed",
  "not-found": "Not found",
  conflict: "Conflict",
  stale: "Changed meanwhile",
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

/** The body of a problem; `status` overrides the code's own (413 for a body too large). */
export function problemBody(error: GuesthouseError, extra: { field?: string; status?: number } = {}) {
  const status = extra.status ?? ERROR_CODES[error.code];
  return {
    type: `urn:guesthouse:problem:${error.code}`,
    title: TITLES[error.code],
    status,
    detail: error.message,
    code: error.code,
    ...(extra.field ? { field: extra.field } : {}),
    ...(error instanceof QuotaError ? { quota: error.refusal } : {}),
  };
}

