/**
 * How the CLI ends: its exit codes tell a script what kind of failure it met.
 *
 *   0  done
 *   1  a failure: the dashboard or the host failed, a task failed, the network broke
 *   2  a usage error: unknown command or option, a missing argument, no remote
 *   3  a refusal: not allowed, not found, over a quota, in the wrong state, stale, rate-limited
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, refused: 3 } as const;

export class UsageError extends Error {
  readonly exitCode = EXIT.usage;
}

/** An answer of the API that is a problem (RFC 9457). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  get exitCode(): number {
    return this.status >= 400 && this.status < 500 ? EXIT.refused : EXIT.failure;
  }
}

export class Failure extends Error {
  readonly exitCode = EXIT.failure;
}
