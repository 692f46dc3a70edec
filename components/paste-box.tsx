"use client";

import { useMemo, useState, useTransition } from "react";
import { pasteText } from "@/app/actions/paste-text";
import { describeCharacter, KEYBOARD_LAYOUT_NAMES, untypeableCharacters, type KeyboardLayout } from "@/server/domain/keymaps";
import { PASTE_MAX_CHARS } from "@/server/domain/types";
import { TaskBar, useLiveTasks, type TaskView } from "./task-progress";

/**
 * Paste as keystrokes: text from the box (or the person's clipboard) is typed into the
 * guest key by key, translated for the guest's keyboard layout. Characters the layout
 * has no key for are named before anything is sent. A long paste is a task: progress
 * and Cancel come from the task record.
 */
export function PasteBox({ guestId, layout }: { guestId: string; layout: KeyboardLayout }) {
  const [text, setText] = useState("");
  const [enter, setEnter] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [started, setStarted] = useState<TaskView[]>([]);
  const [pending, startTransition] = useTransition();
  const tasks = useLiveTasks(started);
  const latest = started.length ? tasks.get(started[started.length - 1]!.id) : undefined;
  const untypeable = useMemo(() => untypeableCharacters(text, layout), [text, layout]);
  const toSend = enter ? `${text}\n` : text;

  async function fromClipboard() {
    setNote(null);
    try {
      const clip = await navigator.clipboard.readText();
      if (!clip) return setNote("The clipboard holds no text.");
      setText(clip);
    } catch {
      setNote("This browser did not let the page read the clipboard: paste into the box with Ctrl-V instead.");
    }
  }

  function send() {
    setError(null);
    startTransition(async () => {
      const result = await pasteText(guestId, toSend);
      if (!result.ok) return setError(result.error);
      setStarted((s) => [...s, result.data]);
    });
  }

  const busy = pending || latest?.state === "running";
  return (
    <section className="card space-y-3 p-4" aria-labelledby="paste-title">
      <div className="flex items-center justify-between">
        <h2 id="paste-title" className="font-semibold">
          Paste as keystrokes
        </h2>
        <span className="text-xs text-slate-500" data-testid="paste-layout">
          Keyboard layout: {KEYBOARD_LAYOUT_NAMES[layout]} (set in the guest&apos;s hardware)
        </span>
      </div>
      <textarea
        data-testid="paste-text"
        aria-label="Text to type into the guest"
        className="field h-28 font-mono"
        maxLength={PASTE_MAX_CHARS}
        placeholder="Text to type into the guest, e.g. a long command or a password"
        value={text}
        onChange={(e) => setText(e.target.value)}
      />
      {untypeable.length > 0 && (
        <div data-testid="paste-warning" className="rounded border border-amber-300 bg-amber-50 p-2 text-sm text-amber-900">
          This layout has no key for {untypeable.slice(0, 10).map(describeCharacter).join(", ")}
          {untypeable.length > 10 && ` and ${untypeable.length - 10} more`}.{" "}
          <button
            type="button"
            className="underline"
            onClick={() => setText([...text].filter((c) => !untypeable.includes(c)).join(""))}
          >
            Remove them
          </button>
        </div>
      )}
      <div className="flex flex-wrap items-center gap-2">
        <button type="button" className="btn btn-primary" disabled={busy || !text || untypeable.length > 0} onClick={send}>
          Type into guest
        </button>
        <button type="button" className="btn" onClick={fromClipboard}>
          From clipboard
        </button>
        <label className="flex items-center gap-1 text-sm">
          <input type="checkbox" data-testid="paste-enter" checked={enter} onChange={(e) => setEnter(e.target.checked)} />
          Press Enter after
        </label>
        <span className="text-xs text-slate-500">{text.length.toLocaleString("en")} characters</span>
      </div>
      {note && <p className="text-sm text-slate-600">{note}</p>}
      {error && (
        <p className="text-sm text-red-700" data-testid="paste-error">
          {error}
        </p>
      )}
      {latest && <TaskBar task={latest} label="Typing into the guest" />}
    </section>
  );
}
