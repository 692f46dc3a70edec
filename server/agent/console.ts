/**
 * A guest's consoles, as the agent serves them: the graphical console (the raw VNC
 * stream behind a one-time password), the serial port (shared by every viewer) and
 * its kept log, paste as keystrokes, and thumbnails of the screen. The pieces live in
 * vnc.ts, serial.ts, paste.ts and screenshot.ts; this module ties them to the
 * supervisor's guests, and api.ts to HTTP.
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import { GuesthouseError } from "../domain/errors";
import type { KeyboardLayout } from "../domain/keymaps";
import { AGENT_SERIAL_UPGRADE, AGENT_VNC_PASSWORD_HEADER, AGENT_VNC_UPGRADE, type NativeVncPassword, type TaskStatus } from "../domain/types";
import type { ConsoleKind } from "../console/types";
import { VNC_TLS_DISPLAY_ID } from "../qemu/args";
import type { AgentConfig } from "./config";
import { Paste } from "./paste";
import { Screenshots } from "./screenshot";
import { readSerialLog, SerialLogRotation, SerialPorts } from "./serial";
import type { Supervisor } from "./supervisor";
import type { Tasks } from "./tasks";
import { readCaCertificate } from "./tls";
import { NativeVncPasswords, VncPasswords } from "./vnc";

/** The byte streams a console client can ask the agent for, by their HTTP Upgrade name. */
export const CONSOLE_UPGRADES = { [AGENT_VNC_UPGRADE]: "vnc", [AGENT_SERIAL_UPGRADE]: "serial" } as const satisfies Record<string, ConsoleKind>;

/** A console stream that is ready: the 101 reply's extra headers, then the client is attached. */
export interface ConsoleStream {
  headers: Record<string, string>;
  /** Relays between the upgraded client socket and the guest, both directions. */
  attach(client: Duplex, head: Buffer): void;
  /** The client went away before it was attached: let go of the guest's side. */
  cancel(): void;
}

export class Consoles {
  private readonly passwords: VncPasswords;
  private readonly serialPorts = new SerialPorts();
  private readonly rotation: SerialLogRotation;
  private readonly screenshots = new Screenshots();
  private readonly paste: Paste;
  private readonly nativePasswords: NativeVncPasswords;

  constructor(
    private readonly config: AgentConfig,
    private readonly supervisor: Supervisor,
    tasks: Tasks,
  ) {
    this.passwords = new VncPasswords(config.vncPasswordSeconds);
    this.rotation = new SerialLogRotation(supervisor, config.serialLogBytes);
    this.paste = new Paste(supervisor, tasks);
    this.nativePasswords = new NativeVncPasswords(config.vncTls?.passwordSeconds ?? 60, VNC_TLS_DISPLAY_ID);
    this.rotation.start();
  }

  open(kind: ConsoleKind, guestId: string): Promise<ConsoleStream> {
    return kind === "vnc" ? this.openVnc(guestId) : this.openSerial(guestId);
  }

  /** The guest's VNC stream, with the one-time password its viewer must give. */
  private async openVnc(guestId: string): Promise<ConsoleStream> {
    const target = this.supervisor.consoleOf(guestId);
    const password = await this.passwords.forSession(target.qmp);
    const vnc = await connectUnix(target.files.vnc, "The guest's display is not reachable");
    return {
      headers: { [AGENT_VNC_PASSWORD_HEADER]: password },
      attach(client, head) {
        if (head.length) vnc.write(head);
        // pipe() pauses the faster side while the slower one drains, in both directions,
        // and ends the other side only after everything read was written.
        vnc.pipe(client);
        client.pipe(vnc);
        vnc.once("error", () => client.destroy());
        client.once("error", () => vnc.destroy());
        client.once("close", () => vnc.destroy());
      },
      cancel: () => vnc.destroy(),
    };
  }

  /** The guest's serial port, shared with everyone else watching it. */
  private async openSerial(guestId: string): Promise<ConsoleStream> {
    const target = this.supervisor.consoleOf(guestId);
    if (target.spec && !target.spec.serial) {
      throw new GuesthouseError("conflict", "This guest has no serial port. Turn it on in the guest's hardware and restart the guest.");
    }
    const lease = await this.serialPorts.open(guestId, target.files.serial, target.files.serialLog);
    return { headers: {}, attach: lease.attach, cancel: lease.cancel };
  }

  /** Everything the guest's serial port printed that is kept (running or stopped guests). */
  serialLog(guestId: string): Promise<Buffer> {
    return readSerialLog(this.supervisor.filesOf(guestId), this.config.serialLogBytes);
  }

  screenshot(guestId: string, width: number): Promise<Buffer> {
    return this.screenshots.png(this.supervisor.consoleOf(guestId), width);
  }

  type(guestId: string, text: string, layout: KeyboardLayout): TaskStatus {
    return this.paste.type(guestId, text, layout);
  }

  /**
   * A one-time password for a native viewer on the guest's TLS VNC display, with
   * where to connect. Refused when the guest runs without one (TLS VNC is off, or it
   * was started before it was turned on).
   */
  async nativeVncPassword(guestId: string): Promise<NativeVncPassword> {
    const target = this.supervisor.consoleOf(guestId);
    if (!target.vncTls) {
      throw new GuesthouseError(
        "conflict",
        this.config.vncTls
          ? "This guest was started before the TLS VNC endpoint was turned on; restart it to get one."
          : "Native viewers are off on this host: its agent runs without GUESTHOUSE_VNC_TLS=on.",
      );
    }
    const { password, expiresInSeconds } = await this.nativePasswords.issue(target.qmp, target.vncTls.port);
    return { password, expiresInSeconds, host: target.vncTls.host, port: target.vncTls.port };
  }

  /** The host's TLS VNC certificate authority (public), for viewers to trust. */
  async vncCaCertificate(): Promise<string> {
    if (!this.config.vncTls) throw new GuesthouseError("not-found", "Native viewers are off on this host: its agent runs without GUESTHOUSE_VNC_TLS=on.");
    return readCaCertificate(this.config.vncTls.dir);
  }

  close(): void {
    this.rotation.stop();
    this.serialPorts.closeAll();
  }
}

function connectUnix(socketPath: string, what: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path: socketPath });
    socket.once("connect", () => {
      socket.off("error", onError);
      socket.on("error", () => {}); // reported by whoever relays it; never an uncaught error
      resolve(socket);
    });
    const onError = (err: Error) => reject(new GuesthouseError("qemu-failed", `${what}: ${err.message}`));
    socket.once("error", onError);
  });
}
