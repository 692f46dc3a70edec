"use client";

import { useEffect, useReducer, type DependencyList } from "react";
import type { ConsoleOpening } from "@/server/console/availability";
import { canConsoleTransition, reconnectDelayMs, type ConsoleStateKind } from "@/server/console/types";
import type { ActionResult } from "@/server/web/action";

/** Where a console stands, and why when it is not connected. */
export type ConsoleStatus = { kind: ConsoleStateKind; reason?: string };

/** A ticket for the same-origin bridge, as the server hands it out. */
export type ConsoleTicket = Extract<ConsoleOpening, { status: "ticket" }>;

/** How one connection tells the hook what became of it. Calls after the first `lost` are ignored. */
export interface ConsoleLink {
  /** It reached the guest: the failure count starts again. */
  connected(): void;
  /** It ended; `failed` when it never worked (counts towards giving up) rather than ended after working (a reboot, say). */
  lost(reason: string, failed: boolean): void;
}

export interface ConsoleConnectionOptions {
  /** Names the console in the browser's log. */
  name: string;
  /** Asks the server for a ticket (or why there is none). */
  ask(): Promise<ActionResult<ConsoleOpening>>;
  /** Opens the bridge with a ticket and reports through `link`; returns what closes it. */
  open(ticket: ConsoleTicket, link: ConsoleLink): () => void;
  /** While the guest is off, its changes on the page's event stream end the wait early; null: poll only (a shared link has no stream). */
  watchGuest: string | null;
  /** Error codes another try would not change. */
  finalCodes: ReadonlySet<string>;
}

/** Connections in a row that may fail while the guest runs, before the page gives up and says why. */
const MAX_FAILURES = 12;

export const CONSOLE_LABELS: Record<ConsoleStateKind, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  "guest-off": "Guest is off",
  disconnected: "Disconnected",
};

/** The bridge's websocket for a ticket, on the page's own origin (the ticket is single-use, so it may travel in the URL). */
export function bridgeSocket(ticket: ConsoleTicket): WebSocket {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${window.location.host}${ticket.path}?ticket=${encodeURIComponent(ticket.ticket)}`);
  ws.binaryType = "arraybuffer";
  return ws;
}

/**
 * Keeps a console connected for as long as the component lives, the same way for the
 * screen and the serial port: ask the server for a ticket, open, and when the
 * connection ends ask again. A rebooting guest reconnects by itself (with backoff
 * while it starts), a guest that is off is waited for, and after MAX_FAILURES failed
 * tries in a row the page gives up and says why. Changes of state follow the console
 * state machine (server/console/types.ts); an illegal one is ignored and logged.
 * Runs again from the start when `deps` change (a reconnect, view-only toggled).
 */
export function useConsoleConnection(options: ConsoleConnectionOptions, deps: DependencyList): ConsoleStatus {
  const [status, setStatus] = useReducer((current: ConsoleStatus, next: ConsoleStatus) => {
    if (canConsoleTransition(current.kind, next.kind)) return next;
    console.warn(`${options.name}: ignored a change from ${current.kind} to ${next.kind}`);
    return current;
  }, { kind: "connecting" });

  useEffect(() => {
    const { ask, open, watchGuest, finalCodes } = options;
    let stopped = false;
    /** Failed tries in a row; `backoff` also counts waits for a starting guest. */
    let failures = 0;
    let backoff = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let events: EventSource | null = null;
    let close: (() => void) | null = null;

    const later = (ms: number, fn: () => void) => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
    const stopWatching = () => {
      events?.close();
      events = null;
    };

    /** Counts a failed try (unless told not to) and tries again after a while, or gives up with the reason. */
    const retry = (reason: string, counts = true) => {
      if (stopped) return;
      if (counts) failures++;
      if (failures > MAX_FAILURES) return setStatus({ kind: "disconnected", reason });
      setStatus({ kind: "reconnecting", reason });
      later(reconnectDelayMs(backoff++), () => void attempt());
    };

    /** The guest is off: wait for it to change (the event stream), and ask again now and then anyway. */
    const waitForGuest = (reason: string) => {
      setStatus({ kind: "guest-off", reason });
      failures = 0;
      backoff = 0;
      if (watchGuest !== null) {
        stopWatching();
        events = new EventSource("/api/events");
        events.onmessage = (e: MessageEvent<string>) => {
          try {
            if (!(JSON.parse(e.data) as string[]).includes(watchGuest)) return;
          } catch {
            return;
          }
          stopWatching();
          later(300, () => void attempt());
        };
      }
      // Streams can miss a change, and a shared link has none.
      later(watchGuest !== null ? 15_000 : 5_000, () => void attempt());
    };

    const attempt = async () => {
      if (stopped) return;
      clearTimeout(timer);
      if (backoff === 0) setStatus({ kind: "connecting" });
      let result: ActionResult<ConsoleOpening>;
      try {
        result = await ask();
      } catch {
        result = { ok: false, code: "agent-unreachable", error: "The dashboard did not answer." };
      }
      if (stopped) return;
      if (!result.ok) return finalCodes.has(result.code) ? setStatus({ kind: "disconnected", reason: result.error }) : retry(result.error);
      const opening = result.data;
      if (opening.status === "off") return waitForGuest(opening.message);
      // Starting: not a failure, it only takes a moment.
      if (opening.status === "wait") return retry(opening.message, false);
      stopWatching();
      let ended = false;
      close = open(opening, {
        connected: () => {
          if (stopped || ended) return;
          failures = 0;
          backoff = 0;
          setStatus({ kind: "connected" });
        },
        lost: (reason, failed) => {
          if (ended) return;
          ended = true;
          close = null;
          retry(reason, failed);
        },
      });
    };

    void attempt();
    return () => {
      stopped = true;
      clearTimeout(timer);
      stopWatching();
      close?.();
    };
    // The caller names what a connection depends on.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  return status;
}
