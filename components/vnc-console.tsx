"use client";

import type RFB from "@novnc/novnc/lib/rfb";
import { useCallback, useEffect, useRef, useState } from "react";
import { openConsole } from "@/app/actions/open-console";

type ConsoleState =
  | { kind: "connecting" }
  | { kind: "connected" }
  | { kind: "disconnected"; reason: string };

/**
 * The guest's screen through noVNC. It asks the server for a single-use ticket,
 * then opens the same-origin websocket; the browser never learns where the guest runs.
 */
export function VncConsole({ guestId }: { guestId: string }) {
  const screen = useRef<HTMLDivElement>(null);
  const rfbRef = useRef<RFB | null>(null);
  const [state, setState] = useState<ConsoleState>({ kind: "connecting" });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let cancelled = false;
    let rfb: RFB | null = null;
    setState({ kind: "connecting" });
    (async () => {
      const result = await openConsole(guestId);
      if (cancelled) return;
      if (!result.ok) {
        setState({ kind: "disconnected", reason: result.error });
        return;
      }
      // noVNC touches `window` when it loads, so it is imported here, in the browser only.
      const { default: NoVncRFB } = await import("@novnc/novnc");
      if (cancelled || !screen.current) return;
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      const url = `${scheme}://${window.location.host}${result.data.path}?ticket=${encodeURIComponent(result.data.ticket)}`;
      rfb = new NoVncRFB(screen.current, url, { shared: true });
      rfb.scaleViewport = true;
      rfb.focusOnClick = true;
      rfbRef.current = rfb;
      rfb.addEventListener("connect", () => {
        setState({ kind: "connected" });
        rfb?.focus();
      });
      rfb.addEventListener("disconnect", (e) => {
        setState({
          kind: "disconnected",
          reason: e.detail.clean ? "The console closed (the guest may have stopped)." : "The connection to the console was lost.",
        });
      });
      rfb.addEventListener("securityfailure", (e) => {
        setState({ kind: "disconnected", reason: `The guest refused the console: ${e.detail.reason ?? "no reason given"}` });
      });
    })().catch((err: unknown) => {
      if (!cancelled) setState({ kind: "disconnected", reason: err instanceof Error ? err.message : String(err) });
    });
    return () => {
      cancelled = true;
      rfbRef.current = null;
      rfb?.disconnect();
    };
  }, [guestId, attempt]);

  const sendCtrlAltDel = useCallback(() => rfbRef.current?.sendCtrlAltDel(), []);

  return (
    <div className="space-y-2">
      <div className="flex items-center justify-between text-sm">
        <span data-testid="console-state" data-state={state.kind} className="text-slate-600">
          {state.kind === "connecting" && "Connecting…"}
          {state.kind === "connected" && "Connected"}
          {state.kind === "disconnected" && <span className="text-red-700">Disconnected: {state.reason}</span>}
        </span>
        <div className="flex gap-2">
          <button className="btn" onClick={sendCtrlAltDel} disabled={state.kind !== "connected"}>
            Ctrl-Alt-Del
          </button>
          <button className="btn" onClick={() => setAttempt((n) => n + 1)} disabled={state.kind === "connecting"}>
            Reconnect
          </button>
        </div>
      </div>
      <div ref={screen} data-testid="vnc-screen" className="h-[70vh] w-full overflow-hidden rounded-lg bg-black" />
    </div>
  );
}
