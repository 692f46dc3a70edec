/** Bounding work that costs a CPU or more each. */

/**
 * A fixed number of jobs at once (qemu-img runs on a host, password hashes in the web);
 * the rest wait their turn, first come first served. A waiter that is cancelled leaves
 * the queue without taking a slot.
 */
export class JobSlots {
  private running = 0;
  private readonly queue: Array<{ grant: () => void; moved: () => void }> = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`JobSlots needs a whole number ≥ 1, not ${size}`);
  }

  /** Slots in use, and jobs waiting for one. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.queue.length };
  }

  /**
   * Waits for a slot and returns its release (call it exactly once). `onWait` hears how
   * many jobs are ahead each time that changes while this one waits.
   */
  take(signal?: AbortSignal, onWait?: (ahead: number) => void): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const release = () => {
      this.running--;
      const next = this.queue.shift();
      if (next) next.grant();
      for (const w of this.queue) w.moved();
    };
    let released = false;
    const once = () => {
      if (!released) {
        released = true;
        release();
      }
    };
    if (this.running < this.size) {
      this.running++;
      return Promise.resolve(once);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          this.running++;
          resolve(once);
        },
        moved: () => onWait?.(this.queue.indexOf(waiter)),
      };
      const onAbort = () => {
        const at = this.queue.indexOf(waiter);
        if (at >= 0) this.queue.splice(at, 1);
        for (const w of this.queue.slice(at)) w.moved();
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.queue.push(waiter);
      onWait?.(this.queue.length - 1);
    });
  }
}
