"use client";

import { useEffect, useRef, useState } from "react";

const REFRESH_MS = 5_000;

/**
 * A small live picture of a running guest's screen for the guest list. It reloads every
 * few seconds, but only while it is on screen and the page is visible, so a long list
 * or a background tab asks the hosts for nothing. A guest that is not running shows a
 * placeholder.
 */
export function GuestThumbnail({ guestId, name, running }: { guestId: string; name: string; running: boolean }) {
  const ref = useRef<HTMLAnchorElement>(null);
  const [stamp, setStamp] = useState<number | null>(null);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    if (!running) return;
    const el = ref.current;
    if (!el) return;
    let inView = false;
    let timer: ReturnType<typeof setInterval> | undefined;
    const visible = () => inView && document.visibilityState === "visible";
    const update = () => {
      clearInterval(timer);
      if (!visible()) return;
      setStamp(Date.now());
      timer = setInterval(() => visible() && setStamp(Date.now()), REFRESH_MS);
    };
    const observer = new IntersectionObserver((entries) => {
      inView = entries.some((e) => e.isIntersecting);
      update();
    });
    observer.observe(el);
    document.addEventListener("visibilitychange", update);
    return () => {
      observer.disconnect();
      clearInterval(timer);
      document.removeEventListener("visibilitychange", update);
    };
  }, [running, guestId]);

  return (
    <a
      ref={ref}
      href={running ? `/guests/${guestId}/console` : `/guests/${guestId}`}
      title={running ? `Open the console of ${name}` : `${name} is not running`}
      className="relative flex h-14 w-24 items-center justify-center overflow-hidden rounded bg-slate-900"
    >
      {running && stamp !== null && (
        // A plain <img>: the picture changes every few seconds and must not be cached or optimised.
        // eslint-disable-next-line @next/next/no-img-element
        <img
          data-testid="guest-thumbnail"
          src={`/guests/${guestId}/thumbnail?w=192&t=${stamp}`}
          alt={`Screen of ${name}`}
          className={`h-full w-full object-contain ${failed ? "invisible" : ""}`}
          onError={() => setFailed(true)}
          onLoad={() => setFailed(false)}
        />
      )}
      {(!running || stamp === null || failed) && (
        <span data-testid="guest-thumbnail-placeholder" className="absolute text-[10px] uppercase tracking-wide text-slate-500">
          {running ? (failed ? "no picture" : "…") : "off"}
        </span>
      )}
    </a>
  );
}
