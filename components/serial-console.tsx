"use client";

import "@xterm/xterm/css/xterm.css";
import type { FitAddon } from "@xterm/addon-fit";
import type { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "react";
import { openConsole } from "@/app/actions/open-console";
import { bridgeSocket, CONSOLE_LABELS, useConsoleConnection } from "./use-console-connection";

/** Errors that another try would not change. */
const FINAL_CODES = new Set(["unauthenticated", "forbidden", "not-found", "invalid-input", "conflict"]);

/**
 * The guest's first serial port in xterm.js, over the same ticketed same-origin bridge
 * as the screen (`/ws/serial/<guest>`). Bytes from the port are written to the
 * terminal as they come; what the person types (and xterm's own paste) goes to the
 * port. Several people may have it open at once: everyone sees the output.
 */
export function SerialConsole({ guestId, guestName }: { guestId: string; guestName: string }) {
  const box = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | null>(null);
  const socketRef = useRef<WebSocket | null>(null);
  /** Output that arrived before xterm.js had loaded (the port's replay comes first thing). */
  const earlyRef = useRef<Array<string | Uint8Array>>([]);
  const [size, setSize] = useState<{ cols: number; rows: number } | null>(null);
  const [generation, setGeneration] = useState(0);
  const [note, setNote] = useState<string | null>(null);

  // The terminal lives as long as the page; connections come and go under it.
  useEffect(() => {
    let disposed = false;
    let fit: FitAddon | null = null;
    let observer: ResizeObserver | null = null;
    (async () => {
      const [{ Terminal }, { FitAddon }] = await Promise.all([import("@xterm/xterm"), import("@xterm/addon-fit")]);
      if (disposed || !box.current) return;
      const term = new Terminal({ cursorBlink: true, scrollback: 10_000, fontSize: 14, convertEol: false });
      fit = new FitAddon();
      term.loadAddon(fit);
      term.open(box.current);
      fit.fit();
      setSize({ cols: term.cols, rows: term.rows });
      term.onResize(({ cols, rows }) => setSize({ cols, rows }));
      term.onData((data) => {
        const ws = socketRef.current;
        if (ws?.readyState === WebSocket.OPEN) ws.send(new TextEncoder().encode(data));
      });
      // Ctrl-Shift-C copies the selection (plain Ctrl-C is the guest's interrupt).
      term.attachCustomKeyEventHandler((e) => {
        if (e.type === "keydown" && e.ctrlKey && e.shiftKey && e.code === "KeyC") {
          if (term.hasSelection()) void navigator.clipboard.writeText(term.getSelection()).catch(() => {});
          return false;
        }
        return true;
      });
      observer = new ResizeObserver(() => fit?.fit());
      observer.observe(box.current);
      termRef.current = term;
      for (const data of earlyRef.current.splice(0)) term.write(data);
      term.focus();
    })().catch((err: unknown) => setNote(`The terminal could not start: ${err instanceof Error ? err.message : String(err)}`));
    return () => {
      disposed = true;
      observer?.disconnect();
      termRef.current?.dispose();
      termRef.current = null;
    };
  }, []);

  const status = useConsoleConnection(
    {
      name: "serial",
      ask: () => openConsole(guestId, { kind: "serial" }),
      open: (ticket, link) => {
        const ws = bridgeSocket(ticket);
        socketRef.current = ws;
        let opened = false;
        ws.onopen = () => {
          opened = true;
          // Each connection starts with the port's latest output again: a clean screen for it, not a repeat.
          termRef.current?.reset();
          earlyRef.current = [];
          link.connected();
          termRef.current?.focus();
        };
        ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
          const data = typeof e.data === "string" ? e.data : new Uint8Array(e.data);
          if (termRef.current) termRef.current.write(data);
          else earlyRef.current.push(data);
        };
        ws.onclose = (e) => {
          if (socketRef.current === ws) socketRef.current = null;
          // Closed after it worked: the guest may have stopped or be restarting; ask again.
          link.lost(e.reason || (opened ? "The serial console closed." : "The serial console was refused."), !opened);
        };
        return () => {
          ws.onclose = null;
          ws.close();
          if (socketRef.current === ws) socketRef.current = null;
        };
      },
      watchGuest: guestId,
      finalCodes: FINAL_CODES,
    },
    [guestId, generation],
  );

  const sendLine = (line: string) => {
    const ws = socketRef.current;
    if (ws?.readyState === WebSocket.OPEN) ws.send(new TextEncoder().encode(line));
    termRef.current?.focus();
  };

  const copy = async () => {
    const term = termRef.current;
    if (!term?.hasSelection()) return setNote("Select some text in the terminal first.");
    try {
      await navigator.clipboard.writeText(term.getSelection());
      setNote("Copied.");
    } catch {
      setNote("This browser did not let the page write to the clipboard: use Ctrl-Shift-C or the browser's menu.");
    }
  };

  const paste = async () => {
    try {
      const text = await navigator.clipboard.readText();
      // xterm's own paste: line endings become Enter, bracketed paste if the guest asked for it.
      termRef.current?.paste(text);
      termRef.current?.focus();
    } catch {
      setNote("This browser did not let the page read the clipboard: click the terminal and press Ctrl-Shift-V.");
    }
  };

  return (
    <div className="space-y-2">
      <div className="flex flex-wrap items-center justify-between gap-2 text-sm">
        <span data-testid="serial-state" data-state={status.kind} role="status" aria-live="polite" className="flex items-center gap-2">
          <span className="font-medium">{CONSOLE_LABELS[status.kind]}</span>
          {status.reason && status.kind !== "connected" && <span className="text-slate-600">{status.reason}</span>}
        </span>
        <div className="flex flex-wrap gap-2">
          <button type="button" className="btn" onClick={copy} title="Copy the selected text (or Ctrl-Shift-C)">
            Copy
          </button>
          <button type="button" className="btn" onClick={paste} disabled={status.kind !== "connected"} title="Paste the clipboard into the serial port">
            Paste
          </button>
          <button type="button" className="btn" onClick={() => setGeneration((n) => n + 1)}>
            Reconnect
          </button>
          <a className="btn" href={`/guests/${guestId}/serial-log?view=1`} target="_blank" rel="noreferrer">
            Read log
          </a>
          <a className="btn" href={`/guests/${guestId}/serial-log`} download={`${guestName}-serial.log`}>
            Download log
          </a>
        </div>
      </div>
      {note && (
        <p className="text-sm text-slate-600" role="status">
          {note}
        </p>
      )}
      <div ref={box} data-testid="serial-terminal" className="h-[65vh] w-full overflow-hidden rounded-lg bg-black p-1" />
      {size && (
        <p className="text-xs text-slate-500" data-testid="serial-size">
          The terminal is {size.cols} columns × {size.rows} rows. A serial line carries no size: tell the guest with{" "}
          <code className="rounded bg-slate-100 px-1">
            stty rows {size.rows} cols {size.cols}
          </code>{" "}
          <button
            type="button"
            className="underline disabled:opacity-50"
            disabled={status.kind !== "connected"}
            onClick={() => sendLine(`stty rows ${size.rows} cols ${size.cols}\r`)}
          >
            Send it now
          </button>{" "}
          (at a shell prompt).
        </p>
      )}
    </div>
  );
}
