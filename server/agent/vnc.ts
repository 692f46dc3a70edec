/**
 * One-time VNC passwords. Every guest's VNC display starts with `password=on` and no
 * password, so nobody gets in (QEMU refuses VNC auth while the password is unset).
 * Before each console session the agent sets a fresh random password over QMP
 * (`set_password`, then `expire_password` "+<lifetime>") and hands it to whoever opened
 * the stream, in the 101 reply.
 *
 * Sharing: sessions opening while the current password still has a good part of its
 * life left (all but `shareMarginMs` of it: 10 s, or half a short lifetime) get the same password, so two viewers
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
import { Turns } from "./turns";

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

/**
 * Native viewers' one-time passwords (GUESTHOUSE_VNC_TLS=on), on the guest's TLS
 * display only (QMP's `display` member names it; the unix display and its noVNC
 * sessions keep their own password). Each request makes a new password, valid for
 * the configured lifetime (expire_password "+N"), which replaces the one before.
 *
 * One use: when a viewer has logged in on the TLS display (QEMU's VNC_INITIALIZED
 * event, from the display's TCP port), the password is replaced by one nobody knows
 * and expired, so a copy of it is worth nothing. Issuing and that expiry run one after the other per QEMU; an
 * expiry is skipped if a newer password was issued since the login was seen, so a
 * login with the old password never ends the new one.
 */
export class NativeVncPasswords {
  private readonly displays = new WeakMap<QmpClient, { generation: number; turns: Turns }>();

  constructor(
    private readonly lifetimeSeconds: number,
    /** The id of the TLS display (`id=` of its -vnc). */
    private readonly displayId: string,
  ) {}

  /** A new password for the guest's TLS display on `port`, valid for the lifetime or one login. */
  issue(qmp: QmpClient, port: number): Promise<{ password: string; expiresInSeconds: number }> {
    const display = this.watch(qmp, port);
    return display.turns.run(async () => {
      const password = randomVncPassword();
      await qmp.execute("set_password", { protocol: "vnc", password, display: this.displayId });
      await qmp.execute("expire_password", { protocol: "vnc", time: `+${this.lifetimeSeconds}`, display: this.displayId });
      display.generation++;
      return { password, expiresInSeconds: this.lifetimeSeconds };
    });
  }

  private watch(qmp: QmpClient, port: number) {
    let display = this.displays.get(qmp);
    if (display) return display;
    const d = { generation: 0, turns: new Turns() };
    this.displays.set(qmp, d);
    qmp.on("event", (event) => {
      if (event.event !== "VNC_INITIALIZED") return;
      const server = event.data?.server as { family?: unknown; service?: unknown } | undefined;
      if (server?.family === "unix" || String(server?.service) !== String(port)) return;
      const seen = d.generation;
      void d.turns.run(async () => {
        if (d.generation !== seen) return;
        // A password nobody knows ends the used one at once (QEMU's "now" still lets the current second in).
        await qmp.execute("set_password", { protocol: "vnc", password: randomVncPassword(), display: this.displayId });
        await qmp.execute("expire_password", { protocol: "vnc", time: "now", display: this.displayId });
      }).catch(() => {}); // QEMU gone: so is its password
    });
    display = d;
    return display;
  }
}
