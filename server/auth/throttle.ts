/**
 * Login throttling. A user name may fail FREE_FAILURES times; after that every attempt
 * for it, right password or wrong, must wait, the wait doubling with each further
 * failure (1 s, 2 s, 4 s, … at most MAX_WAIT_MS). A success clears the name; so does an
 * hour without failures. Guessing a password online then takes years, while a person
 * who mistyped a few times never notices; someone failing on purpose can make the name
 * wait, but never longer than MAX_WAIT_MS per attempt.
 *
 * By user name, not by address: behind a reverse proxy every browser may share one.
 * Kept in memory (one web process): a restart forgets, which only ever helps the person.
 */

export const FREE_FAILURES = 5;
export const MAX_WAIT_MS = 15 * 60_000;
/** Failures this old no longer count. */
export const FORGET_AFTER_MS = 60 * 60_000;
/** Names remembered at most; the ones failed longest ago go first. */
const MAX_NAMES = 10_000;

export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; last: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Milliseconds before an attempt for this name is looked at; 0 when it may be now. */
  waitMs(name: string): number {
    const entry = this.current(name);
    if (!entry || entry.count < FREE_FAILURES) return 0;
    const wait = Math.min(MAX_WAIT_MS, 1000 * 2 ** (entry.count - FREE_FAILURES));
    return Math.max(0, entry.last + wait - this.now());
  }

  /**
   * Starts an attempt for this name: the milliseconds to wait first (nothing is counted
   * then), or 0, and from then on the attempt counts as a failure until `succeeded`
   * clears the name. So attempts sent at once cannot all get in before the first
   * password check has ended.
   */
  attempt(name: string): number {
    const wait = this.waitMs(name);
    if (wait === 0) this.failed(name);
    return wait;
  }

  failed(name: string): void {
    const entry = this.current(name) ?? { count: 0, last: 0 };
    this.failures.delete(name); // re-inserted last: the map stays ordered by last failure
    this.failures.set(name, { count: entry.count + 1, last: this.now() });
    while (this.failures.size > MAX_NAMES) this.failures.delete(this.failures.keys().next().value!);
  }

  succeeded(name: string): void {
    this.failures.delete(name);
  }

  private current(name: string): { count: number; last: number } | null {
    const entry = this.failures.get(name);
    if (entry && this.now() - entry.last > FORGET_AFTER_MS) {
      this.failures.delete(name);
      return null;
    }
    return entry ?? null;
  }
}

/** The web process's throttle (on globalThis: Next's bundles load this module separately). */
const globalForThrottle = globalThis as unknown as { guesthouseLoginThrottle?: LoginThrottle };
export const loginThrottle: LoginThrottle = (globalForThrottle.guesthouseLoginThrottle ??= new LoginThrottle());

/** "3 s", "2 min" … for telling a person how long to wait. */
export function waitText(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.ceil(s / 60)} min`;
}
