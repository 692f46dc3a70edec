/**
 * The root shell on a demo guest's serial port, straight on QEMU's serial socket (so no
 * agent console may hold the port meanwhile). What the guest itself sees is checked by
 * typing into it.
 */
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { waitFor, type TestAgent } from "./agent";

/** What a guest's serial port printed so far (its log in the agent's state folder), or "" before it has one. */
export function guestSerialLog(agent: Pick<TestAgent, "dataDir">, guestId: string): string {
  try {
    return fs.readFileSync(path.join(agent.dataDir, "guests", guestId, "serial.log"), "utf8");
  } catch {
    return "";
  }
}

/** How long the demo guest may take to reach its shell under TCG on a busy host. */
export const BOOT_TIMEOUT_MS = 90_000;

/**
 * The root shell on a guest's serial port. Each command ends by echoing a marker the
 * shell computes (`$((n+1))`), so the echo of the typed line never matches it.
 */
export class SerialShell {
  private counter = 0;
  private constructor(
    private readonly socket: net.Socket,
    private readonly logFile: string,
  ) {}

  static async open(agent: TestAgent, id: string): Promise<SerialShell> {
    const dir = path.join(agent.dataDir, "guests", id);
    const logFile = path.join(dir, "serial.log");
    const log = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : "");
    await waitFor("the guest's serial shell", () => log().includes("GUESTHOUSE-DEMO-READY") && log().includes("demo:~# "), BOOT_TIMEOUT_MS, 250);
    // QEMU's sockets are in the guest's run folder (the test agents' GUESTHOUSE_RUN_DIR).
    const socket = net.createConnection({ path: path.join(agent.dataDir, "run", id, "serial.sock") });
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    // What the port prints is read from QEMU's log file; the socket is drained all the same, or a
    // full socket buffer would hold the guest's serial port up (a rebooting kernel prints a lot).
    socket.resume();
    return new SerialShell(socket, logFile);
  }

  log(): string {
    return fs.readFileSync(this.logFile, "utf8");
  }

  /** Runs a command line and resolves with what it printed (carriage returns and terminal queries removed). */
  async run(command: string, timeoutMs = 30_000): Promise<string> {
    const n = ++this.counter * 10;
    const marker = `GH-END-${n + 1}`;
    const from = this.log().length;
    this.socket.write(`${command}; echo GH-END-$((${n}+1))\n`);
    const out = await waitFor(`"${command}" in the guest`, () => {
      const text = this.log().slice(from);
      const at = text.lastIndexOf(marker);
      return at >= 0 ? text.slice(0, at) : null;
    }, timeoutMs, 100);
    // Drop the echoed command line (up to its first line break) and terminal noise.
    return out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/\r/g, "").replace(/^[^\n]*\n/, "");
  }

  /** Types a command line and does not wait for it to end (it may take the guest down). */
  send(command: string): void {
    this.socket.write(`${command}\n`);
  }

  close(): void {
    this.socket.destroy();
  }
}

