"use client";

import { useRouter } from "next/navigation";
import { useEffect, useRef, useState } from "react";
import { formatBytes } from "@/server/domain/format";
import { DEFAULT_POOL, ISO_POOL, UPLOAD_PATH, type QuotaRefusal } from "@/server/domain/types";
import { imageFileName, isoName } from "@/server/domain/validation";
import { AskForMore } from "./quota-ask";

type Phase =
  | { kind: "idle" }
  | { kind: "checking" }
  /** The host has part of an earlier upload of this name: resume from it, or start over. */
  | { kind: "ask"; offset: number }
  | { kind: "uploading"; offset: number; sent: number; bytesPerSecond: number | null }
  /** Every byte is sent; the host hashes and inspects the file. */
  | { kind: "finishing" }
  | { kind: "done"; sha256: string; format: string; sizeBytes: number; convertedTo: string | null }
  | { kind: "cancelled" };

/**
 * The file's name, made to fit the image name rule: letters, digits, '.', '_', '+' and
 * '-', starting with a letter or digit, at most 128 characters, keeping the extension
 * (an ISO's in lowercase, as the ISO folder wants it).
 */
export function sanitizeImageName(original: string, iso: boolean): string {
  const dot = original.lastIndexOf(".");
  let stem = dot > 0 ? original.slice(0, dot) : original;
  let ext = dot > 0 ? original.slice(dot + 1) : "";
  const clean = (s: string) => s.replace(/[^A-Za-z0-9._+-]+/g, "-");
  stem = clean(stem).replace(/^[^A-Za-z0-9]+/, "").replace(/-+$/, "");
  ext = clean(ext).replace(/^[^A-Za-z0-9]+/, "");
  if (iso) ext = "iso";
  if (ext.toLowerCase() === "part") ext = "part-file";
  ext = ext.slice(0, 16);
  stem = (stem || "upload").slice(0, 127 - (ext ? ext.length + 1 : 0));
  return ext ? `${stem}.${ext}` : stem;
}

/** The upload's JSON answer, or null when it is not JSON (a proxy's error page). */
type Reply = { sha256?: string; format?: string; sizeBytes?: number; error?: string; quota?: QuotaRefusal; convertedFrom?: string; file?: string };

function parseReply(text: string): Reply | null {
  try {
    return JSON.parse(text) as Reply;
  } catch {
    return null;
  }
}

const isIsoFile = (name: string) => name.toLowerCase().endsWith(".iso");
const addressOf = (pool: string, name: string) => `${UPLOAD_PATH}/${encodeURIComponent(pool)}/${encodeURIComponent(name)}`;

/** The `{ error }` of a refused request, or a sentence about the status. */
async function errorOf(res: Response): Promise<string> {
  const json = (await res.json().catch(() => null)) as { error?: unknown } | null;
  return typeof json?.error === "string" ? json.error : `The server answered ${res.status}.`;
}

/**
 * Uploads a disk image or an ISO from this computer to the host, with a progress bar,
 * its speed, Cancel, and resuming an upload that was broken off. An `.iso` file goes
 * to the ISO folder, anything else to the disk images (the first of `pools` unless
 * another is chosen). The host's SHA-256 of what arrived is shown at the end. Either
 * becomes the session's team's; `mayUpload` says whether the user's role there makes things.
 */
export function UploadForm({ pools = [DEFAULT_POOL], mayUpload = false }: { pools?: string[]; mayUpload?: boolean }) {
  const router = useRouter();
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [diskPool, setDiskPool] = useState(pools[0] ?? DEFAULT_POOL);
  const [phase, setPhase] = useState<Phase>({ kind: "idle" });
  const [error, setError] = useState<string | null>(null);
  const [quota, setQuota] = useState<QuotaRefusal | null>(null);
  const xhrRef = useRef<XMLHttpRequest | null>(null);
  const iso = file ? isIsoFile(file.name) : false;
  const pool = iso ? ISO_POOL : diskPool;
  const busy = phase.kind === "checking" || phase.kind === "uploading" || phase.kind === "finishing";

  // Leaving the page stops the upload (its bytes stay on the host for resuming).
  useEffect(() => () => xhrRef.current?.abort(), []);

  const nameProblem = (() => {
    if (!file || !name) return null;
    for (const schema of iso ? [imageFileName, isoName] : [imageFileName]) {
      const parsed = schema.safeParse(name);
      if (!parsed.success) return parsed.error.issues[0]?.message ?? "This name is not allowed.";
    }
    return null;
  })();

  function choose(picked: File | null) {
    setFile(picked);
    setError(null);
    setPhase({ kind: "idle" });
    setName(picked ? sanitizeImageName(picked.name, isIsoFile(picked.name)) : "");
  }

  /** Asks the host whether part of this name is there already, then uploads or asks. */
  async function start() {
    if (!file) return;
    setError(null);
    setPhase({ kind: "checking" });
    try {
      const res = await fetch(addressOf(pool, name), { cache: "no-store" });
      if (!res.ok) throw new Error(await errorOf(res));
      const { offset, uploading } = (await res.json()) as { offset: number; uploading?: boolean };
      if (uploading) throw new Error(`${name} is being uploaded right now (in another tab?). Wait for it, or cancel it there.`);
      if (offset > 0) return setPhase({ kind: "ask", offset });
      send(0);
    } catch (err) {
      fail(err);
    }
  }

  async function startOver() {
    setError(null);
    setPhase({ kind: "checking" });
    try {
      const res = await fetch(addressOf(pool, name), { method: "DELETE" });
      if (!res.ok) throw new Error(await errorOf(res));
      send(0);
    } catch (err) {
      fail(err);
    }
  }

  function fail(err: unknown, refusal: QuotaRefusal | null = null) {
    setPhase({ kind: "idle" });
    setError(err instanceof Error ? err.message : String(err));
    setQuota(refusal);
  }

  /** PUTs the file from `offset` on, following the bytes sent. */
  function send(offset: number) {
    if (!file) return;
    const size = file.size;
    const xhr = new XMLHttpRequest();
    xhrRef.current = xhr;
    // Speed over the last few seconds, from (time, bytes) samples.
    const samples: Array<[number, number]> = [[performance.now(), 0]];
    setPhase({ kind: "uploading", offset, sent: 0, bytesPerSecond: null });
    xhr.upload.onprogress = (e) => {
      const now = performance.now();
      samples.push([now, e.loaded]);
      while (samples.length > 2 && now - samples[0]![0] > 3000) samples.shift();
      const [t0, b0] = samples[0]!;
      const bytesPerSecond = now - t0 > 250 ? ((e.loaded - b0) * 1000) / (now - t0) : null;
      setPhase(e.loaded >= size - offset ? { kind: "finishing" } : { kind: "uploading", offset, sent: e.loaded, bytesPerSecond });
    };
    xhr.upload.onload = () => setPhase({ kind: "finishing" });
    xhr.onload = () => {
      xhrRef.current = null;
      const json = parseReply(xhr.responseText);
      if (xhr.status === 201 && json?.sha256) {
        setPhase({ kind: "done", sha256: json.sha256, format: json.format ?? "?", sizeBytes: json.sizeBytes ?? size, convertedTo: json.convertedFrom ? (json.file ?? null) : null });
        router.refresh();
      } else {
        fail(new Error(json?.error ?? `The upload was refused (${xhr.status}).`), json?.quota ?? null);
      }
    };
    xhr.onerror = () => {
      xhrRef.current = null;
      fail(new Error("The connection broke during the upload. What arrived is kept on the host: choose Upload again to resume."));
    };
    xhr.onabort = () => {
      xhrRef.current = null;
    };
    xhr.open("PUT", `${addressOf(pool, name)}?size=${size}&offset=${offset}`);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.send(offset > 0 ? file.slice(offset) : file);
  }

  async function cancel() {
    xhrRef.current?.abort();
    xhrRef.current = null;
    try {
      const res = await fetch(addressOf(pool, name), { method: "DELETE" });
      if (!res.ok && res.status !== 404) throw new Error(await errorOf(res));
      setPhase({ kind: "cancelled" });
    } catch (err) {
      fail(err);
    }
  }

  return (
    <form
      className="space-y-3"
      aria-label="Upload"
      onSubmit={(e) => {
        e.preventDefault();
        void start();
      }}
    >
      <input
        type="file"
        className="text-sm"
        aria-label="Image or ISO file"
        disabled={busy}
        onChange={(e) => choose(e.target.files?.[0] ?? null)}
      />
      {file && (
        <div className="grid gap-3 sm:grid-cols-3">
          <label className="label sm:col-span-2">
            Name on the host
            <input
              className="field"
              value={name}
              disabled={busy || phase.kind === "ask"}
              onChange={(e) => {
                setName(e.target.value);
                setPhase({ kind: "idle" });
              }}
            />
            {nameProblem && <span className="mt-1 block text-xs font-normal text-red-700">{nameProblem}</span>}
          </label>
          <div className="label">
            Goes to
            {!mayUpload ? (
              <p className="mt-1 py-2 text-sm font-normal text-red-700" data-testid="upload-target">
                Your role in this team uploads nothing. Ask an owner of the team for another role.
              </p>
            ) : iso ? (
              <p className="mt-1 py-2 text-sm font-normal text-slate-700" data-testid="upload-target">
                ISO images ({ISO_POOL}), your team&apos;s only until an admin publishes it
              </p>
            ) : pools.length > 1 ? (
              <select className="field" value={diskPool} disabled={busy} onChange={(e) => setDiskPool(e.target.value)} aria-label="Storage folder">
                {pools.map((p) => (
                  <option key={p}>{p}</option>
                ))}
              </select>
            ) : (
              <p className="mt-1 py-2 text-sm font-normal text-slate-700" data-testid="upload-target">
                Disk images ({diskPool})
              </p>
            )}
          </div>
        </div>
      )}

      {file && phase.kind === "ask" && (
        <div className="rounded-md border border-amber-300 bg-amber-50 p-3 text-sm" data-testid="upload-resume">
          <p>
            An earlier upload of <b>{name}</b> stopped after {formatBytes(phase.offset)}
            {phase.offset <= file.size ? ` of ${formatBytes(file.size)}` : ""}.
          </p>
          <div className="mt-2 flex gap-2">
            {phase.offset <= file.size && (
              <button type="button" className="btn btn-primary" onClick={() => send(phase.offset)}>
                Resume from {formatBytes(phase.offset)}
              </button>
            )}
            <button type="button" className="btn" onClick={() => void startOver()}>
              Start over
            </button>
          </div>
          {phase.offset > file.size && <p className="mt-2 text-xs text-slate-600">It has more bytes than this file, so it is not the same file.</p>}
        </div>
      )}

      {(phase.kind === "uploading" || phase.kind === "finishing") && file && <Progress file={file} phase={phase} onCancel={() => void cancel()} />}

      {phase.kind === "done" && (
        <div className="rounded-md bg-green-50 p-3 text-sm text-green-900" data-testid="upload-done">
          {/* The bar stays, full: the last progress events and the answer can arrive in one render. */}
          <div data-testid="upload-progress" className="mb-2">
            <div role="progressbar" aria-label={`Uploaded ${name}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={100} className="h-2 overflow-hidden rounded bg-green-200">
              <div className="h-full w-full bg-green-600" />
            </div>
          </div>
          <p>
            Uploaded {name} ({formatBytes(phase.sizeBytes)}, {phase.format}).
          </p>
          {phase.convertedTo && (
            <p className="mt-1" data-testid="upload-converting">
              Guests use qcow2 and raw disks: it is being converted to qcow2 as {phase.convertedTo} (see Tasks); the {phase.format} file
              goes once the copy is made.
            </p>
          )}
          <p className="mt-1 break-all">
            SHA-256: <code className="font-mono text-xs" data-testid="upload-sha256">{phase.sha256}</code>
          </p>
        </div>
      )}
      {phase.kind === "cancelled" && <p className="text-sm text-slate-600">Cancelled; nothing of it was kept.</p>}
      {error && (
        <p role="alert" data-testid="upload-error" className="rounded-md bg-red-50 p-3 text-sm text-red-800">
          {error}
          <AskForMore quota={quota} />
        </p>
      )}

      {file && phase.kind !== "ask" && phase.kind !== "uploading" && phase.kind !== "finishing" && (
        <div className="flex justify-end">
          <button type="submit" className="btn btn-primary" disabled={busy || !name || nameProblem !== null || !mayUpload}>
            {phase.kind === "checking" ? "Checking…" : "Upload"}
          </button>
        </div>
      )}
    </form>
  );
}

function Progress({
  file,
  phase,
  onCancel,
}: {
  file: File;
  phase: Extract<Phase, { kind: "uploading" | "finishing" }>;
  onCancel: () => void;
}) {
  const done = phase.kind === "finishing" ? file.size : phase.offset + phase.sent;
  const percent = file.size ? Math.floor((done / file.size) * 100) : 100;
  return (
    <div className="space-y-1" data-testid="upload-progress">
      <div className="flex items-center justify-between text-sm">
        <span>
          {phase.kind === "finishing"
            ? "Checking the file on the host…"
            : `${formatBytes(done)} of ${formatBytes(file.size)}${phase.offset ? ` (resumed at ${formatBytes(phase.offset)})` : ""}`}
        </span>
        <span className="text-slate-600">
          {percent} %{phase.kind === "uploading" && phase.bytesPerSecond !== null ? ` · ${formatBytes(phase.bytesPerSecond)}/s` : ""}
        </span>
      </div>
      <div
        role="progressbar"
        aria-label={`Uploading ${file.name}`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        className="h-2 overflow-hidden rounded bg-slate-200"
      >
        <div className="h-full bg-indigo-600 transition-[width]" style={{ width: `${percent}%` }} />
      </div>
      {phase.kind === "uploading" && (
        <button type="button" className="btn btn-danger" onClick={onCancel}>
          Cancel
        </button>
      )}
    </div>
  );
}
