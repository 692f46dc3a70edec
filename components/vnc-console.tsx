"use client";

import type RFB from "@novnc/novnc/lib/rfb";
import { useCallback, useEffect, useRef, useState } from "react";
import { openConsole } from "@/app/actions/open-console";
import { openSharedConsole } from "@/app/actions/open-shared-console";
import { comboEvents, type KeyCombo } from "./console-keys";
import { ConsoleToolbar, type ScaleMode } from "./console-toolbar";
import { bridgeSocket, CONSOLE_LABELS, useConsoleConnection, type ConsoleStatus } from "./use-console-connection";

/** Whose console: a logged-in user's guest, or a view-only link's. */
export type ConsoleSource = { kind: "guest"; guestId: string } | { kind: "share"; token: string };

/** Errors that another try would not change. */
const FINAL_CODES = new Set(["unauthenticated", "forbidden", "not-found", "invalid-input"]);
const SCALE_KEY = "guesthouse.console.scale";

/**
 * The guest's screen through noVNC. It asks the server for a single-use ticket, opens
 * the same-origin websocket itself, reads the one-time VNC password from the first
 * (text) message and hands the open socket to noVNC, so no password travels in a URL.
 * When the connection ends it asks the server again: a rebooting guest reconnects by
 * itself (with backoff while it starts), a guest that is off is waited for.
 */
/** `watchOnly`: the user may watch this guest but not operate it (their team role): the console stays view-only. */
export function VncConsole({ source, guestName, popup = false, watchOnly = false }: { source: ConsoleSource; guestName: string; popup?: boolean; watchOnly?: boolean }) {
  const frame = useRef<HTMLDivElement>(null);
  const screen = useRef<HTMLDivElement>(null);
  const rfbRef = useRef<RFB | null>(null);
  const shared = source.kind === "share";
  const [viewOnly, setViewOnly] = useState(shared || watchOnly);
  const [scale, setScale] = useState<ScaleMode>("fit");
  // The current scaling, for connections made later; changes apply at once to the live one.
  const scaleRef = useRef(scale);
  const [generation, setGeneration] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const [isFullscreen, setIsFullscreen] = useState(false);
  const guestId = source.kind === "guest" ? source.guestId : null;
  const token = source.kind === "share" ? source.token : null;

  useEffect(() => {
    const saved = window.localStorage.getItem(SCALE_KEY);
    if (saved === "fit" || saved === "actual" || saved === "remote") setScale(saved);
  }, []);

  const status = useConsoleConnection(
    {
      name: "console",
      ask: () => (guestId !== null ? openConsole(guestId, { kind: "vnc", viewOnly }) : openSharedConsole(token!)),
      open: (ticket, link) => {
        let closed = false;
        let socket: WebSocket | null = null;
        let rfb: RFB | null = null;
        void (async () => {
          // noVNC touches `window` when it loads, so it is imported here, in the browser only.
          const { default: NoVncRFB } = await import("@novnc/novnc");
          if (closed || !screen.current) return;
          const ws = bridgeSocket(ticket);
          socket = ws;
          let closeReason = "";
          ws.addEventListener("close", (e) => (closeReason = e.reason));
          ws.onclose = (e) => link.lost(e.reason || "The console connection was refused or lost.", true);
          ws.onmessage = (e: MessageEvent<unknown>) => {
            // The first message is the one-time password; the RFB stream follows.
            let password: string;
            try {
              if (typeof e.data !== "string") throw new Error("binary");
              password = String((JSON.parse(e.data) as { password?: unknown }).password ?? "");
            } catch {
              ws.close();
              return;
            }
            if (closed || !screen.current) return ws.close();
            let securityReason: string | null = null;
            let reached = false;
            // Hands the open socket over: noVNC replaces its handlers now, before the next message.
            const r = new NoVncRFB(screen.current, ws, {
              shared: true,
              // VNC authentication needs the password only (the types ask for all three kinds).
              credentials: { password } as { username: string; password: string; target: string },
            });
            rfb = r;
            rfbRef.current = r;
            r.focusOnClick = true;
            r.viewOnly = viewOnly;
            applyScale(r, scaleRef.current);
            r.addEventListener("connect", () => {
              reached = true;
              link.connected();
              if (!viewOnly) r.focus();
            });
            r.addEventListener("securityfailure", (ev) => {
              securityReason = `The guest refused the console: ${ev.detail.reason ?? "authentication failed"}.`;
            });
            r.addEventListener("disconnect", () => {
              if (rfbRef.current === r) rfbRef.current = null;
              rfb = null;
              socket = null;
              if (closed) return;
              // A connection that never got as far as the screen counts as a failure; one that did may be a reboot.
              link.lost(securityReason ?? (closeReason || "The connection to the console closed."), !reached || securityReason !== null);
            });
          };
        })().catch((err: unknown) => link.lost(`The console could not start: ${err instanceof Error ? err.message : String(err)}`, true));
        return () => {
          closed = true;
          if (rfb) rfb.disconnect();
          else socket?.close();
          rfbRef.current = null;
        };
      },
      watchGuest: guestId,
      finalCodes: FINAL_CODES,
    },
    // `scale` is applied separately, without reconnecting.
    [guestId, token, generation, viewOnly],
  );

  useEffect(() => {
    scaleRef.current = scale;
    if (rfbRef.current) applyScale(rfbRef.current, scale);
  }, [scale]);

  useEffect(() => {
    const onChange = () => setIsFullscreen(document.fullscreenElement === frame.current && frame.current !== null);
    document.addEventListener("fullscreenchange", onChange);
    return () => document.removeEventListener("fullscreenchange", onChange);
  }, []);

  const sendKeys = useCallback((combo: KeyCombo) => {
    const rfb = rfbRef.current;
    if (!rfb) return;
    for (const [keysym, code, down] of comboEvents(combo)) rfb.sendKey(keysym, code, down);
    rfb.focus();
  }, []);

  const changeScale = (mode: ScaleMode) => {
    setScale(mode);
    window.localStorage.setItem(SCALE_KEY, mode);
  };

  const fullscreen = () => {
    const el = frame.current;
    if (!el) return;
    if (document.fullscreenElement) void document.exitFullscreen();
    else el.requestFullscreen().catch(() => setNotice("This browser refused fullscreen."));
  };

  const screenshot = () => {
    const rfb = rfbRef.current;
    if (!rfb) return;
    rfb.toBlob((blob) => {
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = `${guestName}-${new Date().toISOString().replace(/[:.]/g, "-")}.png`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    }, "image/png");
  };

  const ownWindow = () => {
    const url = guestId !== null ? `/guests/${guestId}/console?window=1` : `${window.location.pathname}?window=1`;
    const opened = window.open(url, `console-${guestId ?? "shared"}`, "popup=yes,width=1100,height=860");
    if (!opened) setNotice("The browser blocked the new window; allow pop-ups for this dashboard.");
  };

  return (
    <div className="space-y-2">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <StatusLine status={status} viewOnly={viewOnly} shared={shared} />
        <ConsoleToolbar
          connected={status.kind === "connected"}
          shared={shared}
          viewOnly={viewOnly}
          viewOnlyLocked={watchOnly}
          scale={scale}
          onKeys={sendKeys}
          onScale={changeScale}
          onViewOnly={setViewOnly}
          onFullscreen={fullscreen}
          onScreenshot={screenshot}
          onOwnWindow={ownWindow}
          onReconnect={() => setGeneration((n) => n + 1)}
        />
      </div>
      {notice && (
        <p className="text-sm text-amber-800" role="status">
          {notice}{" "}
          <button type="button" className="underline" onClick={() => setNotice(null)}>
            OK
          </button>
        </p>
      )}
      {scale === "remote" && (
        <p className="text-xs text-slate-500">
          The guest is asked to change its resolution to this window. Only displays and drivers that support it follow
          (e.g. virtio with a guest agent); others keep their size.
        </p>
      )}
      <div ref={frame} className="relative bg-black">
        <div
          ref={screen}
          data-testid="vnc-screen"
          className={`w-full overflow-hidden bg-black ${isFullscreen ? "h-screen" : popup ? "h-[calc(100vh-7rem)] rounded-lg" : "h-[70vh] rounded-lg"}`}
        />
        {status.kind !== "connected" && <Overlay status={status} shared={shared} guestId={guestId} />}
      </div>
    </div>
  );
}

function applyScale(rfb: RFB, mode: ScaleMode): void {
  // noVNC maps pointer coordinates through its own scaling, so "fit" has no mouse offset.
  rfb.scaleViewport = mode === "fit";
  rfb.clipViewport = false;
  rfb.resizeSession = mode === "remote";
}

function StatusLine({ status, viewOnly, shared }: { status: ConsoleStatus; viewOnly: boolean; shared: boolean }) {
  const colour =
    status.kind === "connected"
      ? "bg-emerald-500"
      : status.kind === "disconnected"
        ? "bg-red-500"
        : status.kind === "guest-off"
          ? "bg-slate-400"
          : "bg-amber-400";
  return (
    <span data-testid="console-state" data-state={status.kind} className="flex items-center gap-2 text-sm text-slate-700" role="status" aria-live="polite">
      <span className={`inline-block h-2.5 w-2.5 rounded-full ${colour}`} aria-hidden />
      <span className="font-medium">{CONSOLE_LABELS[status.kind]}</span>
      {status.reason && status.kind !== "connected" && <span data-testid="console-reason" className="text-slate-600">{status.reason}</span>}
      {status.kind === "connected" && viewOnly && (
        <span className="rounded bg-slate-100 px-1.5 text-xs text-slate-600">{shared ? "view-only link" : "view only"}</span>
      )}
    </span>
  );
}

function Overlay({ status, shared, guestId }: { status: ConsoleStatus; shared: boolean; guestId: string | null }) {
  return (
    <div className="pointer-events-none absolute inset-0 flex items-center justify-center rounded-lg bg-black/60 text-center text-slate-100">
      <div className="pointer-events-auto max-w-md space-y-2 p-4">
        <p className="text-lg font-medium">{CONSOLE_LABELS[status.kind]}</p>
        {status.reason && <p className="text-sm text-slate-300">{status.reason}</p>}
        {status.kind === "guest-off" && (
          <p className="text-sm text-slate-300">
            The console connects by itself when the guest starts.
            {!shared && guestId && (
              <>
                {" "}
                <a href={`/guests/${guestId}`} className="underline">
                  Start it from its page
                </a>
                .
              </>
            )}
          </p>
        )}
      </div>
    </div>
  );
}
