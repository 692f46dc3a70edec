"use client";

import { useEffect, useState, useTransition } from "react";
import { nativeViewerPassword } from "@/app/actions/native-viewer";
import { CopyButton } from "./copy-button";

/**
 * "Connect a native viewer": where the guest's TLS VNC endpoint is, the host's CA
 * certificate to trust, and a one-time password on request (it ends at its first
 * login or when the countdown runs out; a new one replaces the last). Shown only to
 * the guest's owner or an admin, while the guest runs with such an endpoint.
 */
export function NativeViewer({ guestId, host, port }: { guestId: string; host: string; port: number }) {
  const [issued, setIssued] = useState<{ password: string; until: number } | null>(null);
  const [left, setLeft] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [pending, startTransition] = useTransition();
  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const caFile = "guesthouse-vnc-ca.pem";

  useEffect(() => {
    if (!issued) return;
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((issued.until - Date.now()) / 1000));
      setLeft(seconds);
      if (seconds === 0) setIssued(null);
    };
    tick();
    const timer = setInterval(tick, 1000);
    return () => clearInterval(timer);
  }, [issued]);

  function getPassword() {
    setError(null);
    startTransition(async () => {
      const result = await nativeViewerPassword(guestId);
      if (!result.ok) {
        setIssued(null);
        return setError(result.error);
      }
      setIssued({ password: result.data.password, until: Date.now() + result.data.expiresInSeconds * 1000 });
    });
  }

  return (
    <section className="card space-y-3 p-4" data-testid="native-viewer" aria-labelledby="native-viewer-title">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="native-viewer-title" className="font-semibold">
          Connect a native viewer
        </h2>
        <a href={`/guests/${guestId}/vnc-ca`} className="btn" download={caFile}>
          Download CA certificate
        </a>
      </div>
      <div className="flex flex-wrap items-center gap-2 text-sm">
        <span className="text-slate-500">VNC over TLS at</span>
        <code data-testid="native-viewer-address" className="rounded bg-slate-100 px-1.5 font-mono">
          {address}
        </code>
        <CopyButton text={address} />
      </div>
      <div className="flex flex-wrap items-center gap-2 text-sm">
        <button type="button" className="btn btn-primary" onClick={getPassword} disabled={pending}>
          {issued ? "Get a new password" : "Get a one-time password"}
        </button>
        {issued && (
          <>
            <code data-testid="native-viewer-password" className="rounded bg-emerald-50 px-1.5 font-mono ring-1 ring-emerald-300">
              {issued.password}
            </code>
            <CopyButton text={issued.password} />
            <span className="text-slate-500">for one login, within {left} s</span>
          </>
        )}
      </div>
      {error && (
        <p role="alert" className="text-sm text-red-700">
          {error}
        </p>
      )}
      <p className="text-xs text-slate-500">
        TigerVNC: <code className="font-mono">vncviewer -SecurityTypes=X509Vnc -X509CA={caFile} {host.includes(":") ? `[${host}]` : host}::{port}</code>
        {" "}· remote-viewer: save the certificate as <code className="font-mono">~/.pki/CA/cacert.pem</code>, then{" "}
        <code className="font-mono">remote-viewer vnc://{address}</code>
      </p>
    </section>
  );
}
