/**
 * The guest's serial console in this terminal: the websocket the API gave a ticket for,
 * opened with the token. On a terminal, keys go to the guest as they are typed (raw
 * mode) and Ctrl-] leaves; piped, stdin goes to the guest and its output to stdout.
 */
import WebSocket from "ws";
import { Failure } from "./errors";

const LEAVE = 0x1d; // Ctrl-]

export function serialConsole(url: string, token: string, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
    const tty = process.stdin.isTTY === true;
    const restore = () => {
      if (tty) process.stdin.setRawMode(false);
      process.stdin.pause();
    };
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => reject(new Failure(`The console refused: ${res.statusCode} ${body.trim()}`)));
    });
    ws.on("error", (err) => reject(new Failure(`The console broke: ${err.message}`)));
    ws.on("open", () => {
      if (tty) {
        process.stderr.write(`Connected to ${name}'s serial console; Ctrl-] leaves.\r\n`);
        process.stdin.setRawMode(true);
      }
      process.stdin.on("data", (chunk: Buffer) => {
        if (tty && chunk.includes(LEAVE)) {
          ws.close(1000);
          return;
        }
        ws.send(chunk);
      });
      process.stdin.on("end", () => ws.close(1000));
      process.stdin.resume();
    });
    ws.on("message", (data: Buffer) => process.stdout.write(data));
    ws.on("close", (code, reason) => {
      restore();
      if (tty) process.stderr.write("\r\n");
      if (code === 1000 || code === 1005) resolve();
      else reject(new Failure(`The console closed: ${reason.toString() || code}`));
    });
  });
}
