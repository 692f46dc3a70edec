"use client";

import { useEffect, useRef, useState } from "react";
import { CTRL_ALT_DEL, KEY_MENU, type KeyCombo } from "./console-keys";

export type ScaleMode = "fit" | "actual" | "remote";

export const SCALE_MODES: Array<{ mode: ScaleMode; label: string; title: string }> = [
  { mode: "fit", label: "Fit to window", title: "Scale the guest's screen to the window (the mouse stays exact)" },
  { mode: "actual", label: "1:1", title: "One guest pixel per screen pixel, with scroll bars when larger" },
  {
    mode: "remote",
    label: "Resize guest",
    title: "Ask the guest to change its resolution to the window (needs a display and driver that support it, e.g. virtio with a guest agent)",
  },
];

/**
 * The console's toolbar: key combinations, scaling, view-only, fullscreen, screenshot,
 * own window and reconnect. It only calls back; the console owns the connection.
 */
export function ConsoleToolbar(props: {
  connected: boolean;
  shared: boolean;
  viewOnly: boolean;
  /** View-only is all this user may have (their team role): no switch. */
  viewOnlyLocked?: boolean;
  scale: ScaleMode;
  onKeys: (combo: KeyCombo) => void;
  onScale: (mode: ScaleMode) => void;
  onViewOnly: (viewOnly: boolean) => void;
  onFullscreen: () => void;
  onScreenshot: () => void;
  onOwnWindow: () => void;
  onReconnect: () => void;
}) {
  const { connected, shared, viewOnly } = props;
  const keysDisabled = !connected || viewOnly;
  return (
    <div role="toolbar" aria-label="Console" data-testid="console-toolbar" className="flex flex-wrap items-center gap-2 text-sm">
      {!shared && (
        <>
          <button type="button" className="btn" disabled={keysDisabled} onClick={() => props.onKeys(CTRL_ALT_DEL)} title="Send Ctrl-Alt-Del to the guest">
            Ctrl-Alt-Del
          </button>
          <KeyMenu disabled={keysDisabled} onKeys={props.onKeys} />
        </>
      )}
      <label className="flex items-center gap-1">
        <span className="sr-only">Scaling</span>
        <select
          className="field py-1"
          aria-label="Scaling"
          data-testid="console-scale"
          value={props.scale}
          onChange={(e) => props.onScale(e.target.value as ScaleMode)}
        >
          {SCALE_MODES.filter((m) => !shared || m.mode !== "remote").map((m) => (
            <option key={m.mode} value={m.mode} title={m.title}>
              {m.label}
            </option>
          ))}
        </select>
      </label>
      {!shared && !props.viewOnlyLocked && (
        <label className="flex items-center gap-1" title="Watch without sending keys or mouse; enforced by the server">
          <input type="checkbox" data-testid="console-view-only" checked={viewOnly} onChange={(e) => props.onViewOnly(e.target.checked)} />
          View only
        </label>
      )}
      <button type="button" className="btn" onClick={props.onFullscreen} title="Fill the screen (Esc leaves)">
        Fullscreen
      </button>
      <button type="button" className="btn" disabled={!connected} onClick={props.onScreenshot} title="Download the screen as a PNG image">
        Screenshot
      </button>
      <button type="button" className="btn" onClick={props.onOwnWindow} title="Open the console in a window of its own">
        Own window
      </button>
      <button type="button" className="btn" onClick={props.onReconnect} title="Close the connection and open a fresh one">
        Reconnect
      </button>
    </div>
  );
}

/** A menu of key combinations the person's own desktop would otherwise catch. */
function KeyMenu({ disabled, onKeys }: { disabled: boolean; onKeys: (combo: KeyCombo) => void }) {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent | KeyboardEvent) => {
      if (e instanceof KeyboardEvent ? e.key === "Escape" : !ref.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", close);
    document.addEventListener("keydown", close);
    return () => {
      document.removeEventListener("mousedown", close);
      document.removeEventListener("keydown", close);
    };
  }, [open]);
  return (
    <div ref={ref} className="relative">
      <button
        type="button"
        className="btn"
        aria-haspopup="menu"
        aria-expanded={open}
        disabled={disabled}
        onClick={() => setOpen((o) => !o)}
      >
        Keys ▾
      </button>
      {open && (
        <div role="menu" aria-label="Key combinations" className="absolute left-0 z-20 mt-1 max-h-[60vh] w-72 overflow-y-auto rounded-md border border-slate-200 bg-white py-1 shadow-lg">
          {KEY_MENU.map(({ group, combos }) => (
            <div key={group} className="py-1">
              <div className="px-3 py-1 text-xs font-semibold uppercase tracking-wide text-slate-500">{group}</div>
              {combos.map((combo) => (
                <button
                  key={combo.id}
                  type="button"
                  role="menuitem"
                  title={combo.title}
                  className="block w-full px-3 py-1 text-left hover:bg-slate-100"
                  onClick={() => {
                    onKeys(combo);
                    setOpen(false);
                  }}
                >
                  {combo.label}
                </button>
              ))}
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
