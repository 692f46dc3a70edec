/**
 * Work that must not interleave (a disk table being changed, a VNC password being set, a
 * log being rotated while it is read) takes turns: each piece starts when the one asked
 * for before it has ended, whether that succeeded or failed.
 */
export class Turns {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `work` after everything asked for before; its own result or error is the caller's. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => {});
    return run;
  }
}

/** Turns per key (a file's path, say); a key with nothing waiting is forgotten. */
export class KeyedTurns<K> {
  private readonly tails = new Map<K, Promise<unknown>>();

  run<T>(key: K, work: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(key) ?? Promise.resolve()).then(work, work);
    const tail = run.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return run;
  }
}
