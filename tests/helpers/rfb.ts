/**
 * Reading a console's byte stream in tests, and VNC (RFB 3.8) authentication as a
 * native viewer or noVNC does it.
 */
import { execFileSync } from "node:child_process";
import type { Duplex } from "node:stream";
import { waitFor } from "./agent";

/**
 * Collects a stream's bytes: `take` consumes from the front, `until` waits for text or a
 * byte count (and fails at once if the stream ends first), `detach` stops collecting
 * and hands back what was not taken (for a stream TLS takes over).
 */
export function collect(stream: Duplex) {
  let data = Buffer.alloc(0);
  let ended = false;
  const onData = (c: Buffer) => (data = Buffer.concat([data, c]));
  stream.on("data", onData);
  const closed = new Promise<void>((resolve) => stream.once("close", resolve));
  void closed.then(() => (ended = true));
  stream.once("end", () => (ended = true));
  return {
    closed,
    text: () => data.toString("latin1"),
    bytes: () => data,
    available: () => data.length,
    take(n: number): Buffer {
      const head = data.subarray(0, n);
      data = data.subarray(n);
      return head;
    },
    detach(): Buffer {
      stream.off("data", onData);
      return data;
    },
    until: (what: string | number, timeoutMs = 30_000) =>
      waitFor(
        `${typeof what === "string" ? JSON.stringify(what) : `${what} bytes`} on the stream`,
        () => {
          if (typeof what === "number" ? data.length >= what : data.toString("latin1").includes(what)) return true;
          if (ended) throw new Error(`the stream ended after ${JSON.stringify(data.toString("latin1").slice(-300))}`);
          return false;
        },
        timeoutMs,
        10,
      ),
  };
}

/**
 * The VNC authentication response: the 16-byte challenge DES-encrypted with the password
 * (8 bytes, zero-padded, each byte's bits reversed) as key. Node's OpenSSL 3 keeps DES in
 * its legacy provider, so a child node with --openssl-legacy-provider computes it.
 */
export function vncResponse(password: string, challenge: Buffer): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, "latin1").copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) {
    let r = 0;
    for (let bit = 0; bit < 8; bit++) r |= ((key[i]! >> bit) & 1) << (7 - bit);
    key[i] = r;
  }
  const script =
    'const c=require("crypto").createCipheriv("des-ecb",Buffer.from(process.argv[1],"hex"),null);c.setAutoPadding(false);' +
    'process.stdout.write(Buffer.concat([c.update(Buffer.from(process.argv[2],"hex")),c.final()]).toString("hex"))';
  const hex = execFileSync(process.execPath, ["--openssl-legacy-provider", "-e", script, key.toString("hex"), challenge.toString("hex")], { encoding: "utf8" });
  return Buffer.from(hex, "hex");
}
