"use client";

import { useEffect, useRef } from "react";

/**
 * Calls `read` now and then `everyMs` after each call ends, while the component is mounted
 * and `key` stays the same (null: not at all); skipped while the tab is hidden. `read`
 * gets a signal aborted when the component goes or the key changes: a read that finishes
 * after that must not set state. A failed read is `onError`'s (or ignored: the next one
 * tries again).
 */
export function usePolling(key: string | null, everyMs: number, read: (signal: AbortSignal) => Promise<void>, onError?: (err: unknown) => void): void {
  // The latest callbacks, so a re-render does not restart the loop.
  const latest = useRef({ read, onError });
  latest.current = { read, onError };
  useEffect(() => {
    if (key === null) return;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const tick = async () => {
      try {
        if (!document.hidden) await latest.current.read(controller.signal);
      } catch (err) {
        if (!controller.signal.aborted) latest.current.onError?.(err);
      }
      if (!controller.signal.aborted) timer = setTimeout(() => void tick(), everyMs);
    };
    void tick();
    return () => {
      controller.abort();
      if (timer) clearTimeout(timer);
    };
  }, [key, everyMs]);
}
