"use client";

import { useRouter } from "next/navigation";
import { useEffect } from "react";

/** Re-renders the page's server components whenever the server says a guest changed state. */
export function LiveRefresh() {
  const router = useRouter();
  useEffect(() => {
    const events = new EventSource("/api/events");
    events.onmessage = () => router.refresh();
    return () => events.close();
  }, [router]);
  return null;
}
