/**
 * Login throttling. A user name may fail FREE_FAILURES times; after that every attempt
 * for it, right password or wrong, must wait, the wait doubling with each further
 * failure (1 s, 2 s, 4 s, … at most MAX_WAIT_MS). A success clears the name; so does an
 * hour without failures. Guessing a password online then takes years, while a person
 * who mistyped a few times never notices; someone failing on purpose can make the name
 * wait, but never longer than MAX_WAIT_MS per attempt.
 *
 * In front of it, the same by source address (ADDRESS_FREE_FAILURES free, for an office
 * behind one address): an address failing on many names is slowed before it reaches any
 * name's counter, so it cannot push a name into long waits nor evict the counters of the
 * names it attacks by failing on thousands of others. And a name's waits do not apply to
 * an address it logged in from before (KnownAddresses): a stranger failing on purpose
 * cannot lock a person out of their usual browser.
 * Kept in memory (one web process): a restart forgets, which only ever helps the person.
 */

export const FREE_FAILURES = 5;
export const MAX_WAIT_MS = 15 * 60_000;
/** Failures this old no longer count. */
export const FORGET_AFTER_MS = 60 * 60_000;
/** Names remembered at most; the ones failed longest ago go first. */
const MAX_NAMES = 10_000;

/** Failures an address has before it must wait (several people may share one). */
export const ADDRESS_FREE_FAILURES = 20;

export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; last: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly freeFailures = FREE_FAILURES,
  ) {}

  /** Milliseconds before an attempt for this key is looked at; 0 when it may be now. */
  waitMs(name: string): number {
    const entry = this.current(name);
    if (!entry || entry.count < this.freeFailures) return 0;
    const wait = Math.min(MAX_WAIT_MS, 1000 * 2 ** (entry.count - this.freeFailures));
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

/** Addresses a name logged in from, for KNOWN_FOR_MS after the last time. */
export const KNOWN_FOR_MS = 30 * 24 * 3600_000;
const MAX_KNOWN = 10_000;

export class KnownAddresses {
  private readonly seen = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  add(name: string, address: string): void {
    const key = `${name}\n${address}`;
    this.seen.delete(key);
    this.seen.set(key, this.now());
    while (this.seen.size > MAX_KNOWN) this.seen.delete(this.seen.keys().next().value!);
  }

  has(name: string, address: string): boolean {
    const at = this.seen.get(`${name}\n${address}`);
    return at !== undefined && this.now() - at <= KNOWN_FOR_MS;
  }
}

export interface LoginGate {
  /** Milliseconds to wait (and why), or 0 when the attempt may go on; from then on it counts as failed until `succeeded`. */
  attempt(name: string, address: string): { waitMs: number; by: "address" | "name" | null };
  succeeded(name: string, address: string): void;
}

/** The address throttle in front of the name throttle, with a name's known addresses let through the latter. */
export function loginGate(byName: LoginThrottle, byAddress: LoginThrottle, known: KnownAddresses): LoginGate {
  return {
    attempt(name, address) {
      const addressWait = byAddress.attempt(address);
      if (addressWait > 0) return { waitMs: addressWait, by: "address" };
      if (known.has(name, address)) return { waitMs: 0, by: null };
      const nameWait = byName.attempt(name);
      return { waitMs: nameWait, by: nameWait > 0 ? "name" : null };
    },
    succeeded(name, address) {
      byName.succeeded(name);
      byAddress.succeeded(address);
      known.add(name, address);
    },
  };
}

/** The web process's throttles (on globalThis: Next's bundles load this module separately). */
const globalForThrottle = globalThis as unknown as { guesthouseLoginThrottle?: LoginThrottle; guesthouseLoginGate?: LoginGate };
export const loginThrottle: LoginThrottle = (globalForThrottle.guesthouseLoginThrottle ??= new LoginThrottle());
export const loginGateOfProcess: LoginGate = (globalForThrottle.guesthouseLoginGate ??= loginGate(loginThrottle, new LoginThrottle(Date.now, ADDRESS_FREE_FAILURES), new KnownAddresses()));

/** "3 s", "2 min" … for telling a person how long to wait. */
export function waitText(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.ceil(s / 60)} min`;
}
