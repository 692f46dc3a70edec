/**
 * One-time VNC passwords. Every guest's VNC display starts with `password=on` and no
 * password, so nobody gets in (QEMU refuses VNC auth while the password is unset).
 * Before each console session the agent sets a fresh random password over QMP
 * (`set_password`, then `expire_password` "+<lifetime>") and hands it to whoever opened
 * the stream, in the 101 reply.
 *
 * Sharing: sessions opening while the current password still has a good part of its
 * life left (all but SHARE_MARGIN of it) get the same password, so two viewers
 * opening at once do not knock each other out by replacing it under the other's
 * handshake. After that a new one is made. A password only guards the handshake:
 * sessions already connected stay (`connected` must be "keep" for VNC in QEMU 7.2).
 *
 * Checked against QEMU 7.2's own schema (query-qmp-schema): set_password takes
 * { protocol: "vnc", password, connected?, display? }, expire_password
 * { protocol: "vnc", time, display? } with time "now", "never", "+N" or an absolute N.
 * QEMU's VNC authentication uses only the first 8 characters, hence 8.
 *
 * A guest started before displays had `password=on` (adopted after an agent update)
 * refuses set_password; its display has no authentication at all (query-vnc says
 * auth "none"), and its session gets the empty password until it is restarted.
 */
import { randomInt } from "node:crypto";
import type { QmpClient } from "../qemu/qmp";

export const VNC_PASSWORD_LENGTH = 8;
const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

interface DisplayPassword {
  /** "vnc" (password=on) or "none" (an old guest): asked once per QEMU, null until known. */
  auth: string | null;
  current: { password: string; shareUntil: number } | null;
  /** A password being set: concurrent sessions wait for it and share it. */
  pending: Promise<string> | null;
}

export function randomVncPassword(): string {
  let password = "";
  for (let i = 0; i < VNC_PASSWORD_LENGTH; i++) password += ALPHABET[randomInt(ALPHABET.length)];
  return password;
}

export class VncPasswords {
  /** Keyed by the QMP connection: a new QEMU (or a re-adopted one) starts afresh. */
  private readonly displays = new WeakMap<QmpClient, DisplayPassword>();
  private readonly lifetimeMs: number;
  /** A shared password is handed out only while at least this much of its life remains. */
  private readonly shareMarginMs: number;

  constructor(lifetimeSeconds: number) {
    this.lifetimeMs = lifetimeSeconds * 1000;
    this.shareMarginMs = Math.min(10_000, this.lifetimeMs / 2);
  }

  /** The password for a session opening now ("" for a display without authentication). */
  forSession(qmp: QmpClient): Promise<string> {
    let display = this.displays.get(qmp);
    if (!display) {
      display = { auth: null, current: null, pending: null };
      this.displays.set(qmp, display);
    }
    if (display.pending) return display.pending;
    if (display.current && Date.now() < display.current.shareUntil) return Promise.resolve(display.current.password);
    const d = display;
    const pending = (async () => {
      try {
        d.auth ??= (await qmp.execute<{ auth?: string }>("query-vnc")).auth ?? "none";
        if (d.auth === "none") return "";
        const password = randomVncPassword();
        const issued = Date.now();
        await qmp.execute("set_password", { protocol: "vnc", password });
        await qmp.execute("expire_password", { protocol: "vnc", time: `+${Math.round(this.lifetimeMs / 1000)}` });
        d.current = { password, shareUntil: issued + this.lifetimeMs - this.shareMarginMs };
        return password;
      } finally {
        d.pending = null;
      }
    })();
    d.pending = pending;
    return pending;
  }
}
