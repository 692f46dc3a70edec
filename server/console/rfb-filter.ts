/**
 * View-only, enforced by the server: follows the RFB stream a browser sends to the
 * guest's VNC server (RFC 6143 plus the extensions noVNC and QEMU speak) message by
 * message, forwards what only asks for pictures, and drops whatever would reach the
 * guest as input: key and pointer events, clipboard text, QEMU's extended key
 * events, desktop resizes and XVP power operations. Anything it cannot frame
 * exactly ends the session: guessing a length would let input slip through.
 *
 * Phases of the client's side of the stream:
 *
 *   version (12 bytes "RFB 003.00x\n"; 3.7 and 3.8 only: in 3.3 the server picks
 *   the security type, which this client-side parser cannot see)
 *     → security (1 byte: 1 None, 2 VNC authentication; others refused)
 *     → auth (16 bytes: the VNC authentication response, only for type 2)
 *     → client-init (1 byte: shared flag, forced to 1 so a viewer never knocks
 *       others off)
 *     → messages, each framed by its type byte:
 *         0   SetPixelFormat                 20           forwarded
 *         2   SetEncodings                   4 + 4n       forwarded (minus ExtendedMouseButtons)
 *         3   FramebufferUpdateRequest       10           forwarded
 *         4   KeyEvent                       8            dropped
 *         5   PointerEvent                   6            dropped
 *         6   ClientCutText                  8 + |len|    dropped (negative len: extended clipboard)
 *         150 EnableContinuousUpdates        10           forwarded
 *         248 ClientFence                    9 + len      forwarded
 *         250 XVP (shutdown, reboot, reset)  4            dropped
 *         251 SetDesktopSize                 8 + 16n      dropped
 *         255 QEMU: 0 extended key event     12           dropped
 *                   1 audio: op 0, 1         4            forwarded
 *                            op 2 (format)   10           forwarded
 *
 * PointerEvent is 6 bytes unless the server enabled ExtendedMouseButtons (7 bytes),
 * which it only does when the client asks for it in SetEncodings; the filter strips
 * that pseudo-encoding, so a view-only session's pointer events stay 6 bytes.
 */
import { Transform, type TransformCallback } from "node:stream";

export class RfbFilterError extends Error {
  readonly code = "rfb-filter";
}

type Phase = "version" | "security" | "auth" | "client-init" | "messages";

/** noVNC's pseudo-encoding number for ExtendedMouseButtons (changes PointerEvent's length). */
const EXTENDED_MOUSE_BUTTONS = -316;
/** Bytes needed to frame any unit: the version string (12); message headers need at most 9. */
const HEADER_MAX = 12;

export interface RfbFilterStats {
  forwarded: number;
  dropped: number;
}

type Action = "forward" | "drop" | ((message: Buffer) => Buffer);

export class RfbClientFilter {
  private phase: Phase = "version";
  /** Bytes received and not yet framed, as they came (never concatenated wholesale). */
  private chunks: Buffer[] = [];
  private available = 0;
  /** Bytes of a dropped message still to come: they are discarded as they stream by. */
  private skipping = 0;
  readonly stats: RfbFilterStats = { forwarded: 0, dropped: 0 };

  get currentPhase(): Phase {
    return this.phase;
  }

  /** Feeds bytes from the browser; returns what to send on to the guest. Throws RfbFilterError. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let data = chunk;
    if (this.skipping > 0) {
      const n = Math.min(this.skipping, data.length);
      this.skipping -= n;
      data = data.subarray(n);
    }
    if (data.length) {
      // Copied: the caller may reuse its buffer.
      this.chunks.push(Buffer.from(data));
      this.available += data.length;
    }
    while (this.available > 0) {
      const step = this.next(this.peek(Math.min(HEADER_MAX, this.available)));
      if (step === null) break;
      const { length, action, then } = step;
      if (action === "drop") {
        // Dropped messages are never held in memory: what is here goes, the rest is skipped.
        this.stats.dropped++;
        const now = Math.min(length, this.available);
        this.take(now);
        this.skipping = length - now;
        continue;
      }
      if (this.available < length) break;
      const message = this.take(length);
      if (then) this.phase = then;
      this.stats.forwarded++;
      out.push(action === "forward" ? message : action(message));
    }
    return out;
  }

  /** The first n bytes (n <= available), without removing them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    // Every chunk holds at least a byte, so the first n chunks hold the first n bytes.
    return Buffer.concat(this.chunks.slice(0, n), n);
  }

  /** Removes and returns the first n bytes (n <= available). */
  private take(n: number): Buffer {
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const first = this.chunks[0]!;
      if (first.length <= left) {
        parts.push(first);
        this.chunks.shift();
        left -= first.length;
      } else {
        parts.push(first.subarray(0, left));
        this.chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.available -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  /**
   * Frames the next unit from its first bytes (`head`, up to HEADER_MAX): its whole
   * length, what to do with it and the phase after it, or null when the head is too
   * short to tell.
   */
  private next(head: Buffer): { length: number; action: Action; then?: Phase } | null {
    switch (this.phase) {
      case "version": {
        if (head.length < 12) return null;
        const version = head.subarray(0, 12).toString("latin1");
        if (!/^RFB 003\.00[78]\n$/.test(version)) {
          throw new RfbFilterError(`unsupported protocol version ${JSON.stringify(version)} (view-only needs RFB 3.7 or 3.8)`);
        }
        return { length: 12, action: "forward", then: "security" };
      }
      case "security": {
        const type = head[0]!;
        if (type === 1) return { length: 1, action: "forward", then: "client-init" };
        if (type === 2) return { length: 1, action: "forward", then: "auth" };
        throw new RfbFilterError(`unsupported security type ${type}`);
      }
      case "auth":
        return { length: 16, action: "forward", then: "client-init" };
      case "client-init":
        return { length: 1, action: () => Buffer.from([1]), then: "messages" };
      case "messages":
        return message(head);
    }
  }
}

/** A client message's length and fate from its first bytes (see the table above). */
function message(head: Buffer): { length: number; action: Action } | null {
  const type = head[0]!;
  const need = (n: number) => head.length >= n;
  switch (type) {
    case 0:
      return { length: 20, action: "forward" };
    case 2:
      return need(4) ? { length: 4 + 4 * head.readUInt16BE(2), action: stripEncodings } : null;
    case 3:
      return { length: 10, action: "forward" };
    case 4:
      return { length: 8, action: "drop" };
    case 5:
      return { length: 6, action: "drop" };
    case 6:
      // Negative: the extended clipboard's format; the payload is |length| bytes either way.
      return need(8) ? { length: 8 + Math.abs(head.readInt32BE(4)), action: "drop" } : null;
    case 150:
      return { length: 10, action: "forward" };
    case 248:
      return need(9) ? { length: 9 + head[8]!, action: "forward" } : null;
    case 250:
      return { length: 4, action: "drop" };
    case 251:
      return need(8) ? { length: 8 + 16 * head[6]!, action: "drop" } : null;
    case 255: {
      if (!need(2)) return null;
      const subtype = head[1]!;
      if (subtype === 0) return { length: 12, action: "drop" };
      if (subtype !== 1) throw new RfbFilterError(`unknown QEMU client message ${subtype}`);
      if (!need(4)) return null;
      const op = head.readUInt16BE(2);
      if (op === 0 || op === 1) return { length: 4, action: "forward" };
      if (op === 2) return { length: 10, action: "forward" };
      throw new RfbFilterError(`unknown QEMU audio operation ${op}`);
    }
    default:
      throw new RfbFilterError(`unknown client message type ${type}`);
  }
}

/** SetEncodings without the pseudo-encodings that would change how client messages are framed. */
function stripEncodings(message: Buffer): Buffer {
  const count = message.readUInt16BE(2);
  const kept: number[] = [];
  for (let i = 0; i < count; i++) {
    const encoding = message.readInt32BE(4 + 4 * i);
    if (encoding !== EXTENDED_MOUSE_BUTTONS) kept.push(encoding);
  }
  if (kept.length === count) return message;
  const out = Buffer.alloc(4 + 4 * kept.length);
  message.copy(out, 0, 0, 2);
  out.writeUInt16BE(kept.length, 2);
  kept.forEach((e, i) => out.writeInt32BE(e, 4 + 4 * i));
  return out;
}

/** The filter as a stream stage: browser → filter → guest. Errors with RfbFilterError. */
export function rfbViewOnlyStream(): Transform {
  const filter = new RfbClientFilter();
  const stream = new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      let out: Buffer[];
      try {
        out = filter.push(chunk);
      } catch (err) {
        return callback(err as Error);
      }
      for (const b of out) this.push(b);
      callback();
    },
  });
  return stream;
}
