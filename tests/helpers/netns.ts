/**
 * Network namespaces a test makes for itself (never the host's own network): named with a
 * random part, each command run inside with `ip netns exec`, and every one removed at the
 * end with all it held (links, bridges, rules and the processes started in it).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";

export class Namespaces {
  readonly prefix = `gh${randomBytes(3).toString("hex")}`;
  private readonly made: string[] = [];
  private readonly children: ChildProcess[] = [];

  /** A new, empty namespace with its loopback up; its full name. */
  add(name: string): string {
    const full = `${this.prefix}${name}`;
    execFileSync("ip", ["netns", "add", full]);
    this.made.push(full);
    this.run(full, "ip", "link", "set", "lo", "up");
    return full;
  }

  /** Runs a command inside a namespace to its end: its output, or an error with what it printed. */
  run(ns: string, command: string, ...args: string[]): string {
    return execFileSync("ip", ["netns", "exec", ns, command, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
  }

  /** Whether a command inside a namespace succeeds. */
  ok(ns: string, command: string, ...args: string[]): boolean {
    try {
      this.run(ns, command, ...args);
      return true;
    } catch {
      return false;
    }
  }

  /** Starts a long-lived process inside a namespace (killed at cleanup, if still running). */
  start(ns: string, command: string, ...args: string[]): ChildProcess {
    const child = spawn("ip", ["netns", "exec", ns, command, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.children.push(child);
    return child;
  }

  /**
   * What an HTTP GET of `url` from inside a namespace answers (Node's fetch, bounded; the
   * host's static busybox wget crashes here), or null when nothing answered in time.
   */
  fetchText(ns: string, url: string, timeoutMs = 5_000): string | null {
    const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(${timeoutMs}) }).then((r) => r.text()).then((t) => process.stdout.write(t), () => process.exit(3))`;
    try {
      return execFileSync("ip", ["netns", "exec", ns, process.execPath, "-e", script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs + 5_000 });
    } catch {
      return null;
    }
  }

  /** A TCP listener on `port` inside a namespace (killed at cleanup, or by the caller). */
  listen(ns: string, port: number): ChildProcess {
    return this.start(ns, process.execPath, "-e", `require("node:net").createServer((s) => s.end()).listen(${port}, "0.0.0.0")`);
  }

  /** A veth pair from one namespace to another (`a` in `nsA`, `b` in `nsB`), both up. */
  link(nsA: string, a: string, nsB: string, b: string): void {
    this.run(nsA, "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB);
    this.run(nsA, "ip", "link", "set", a, "up");
    this.run(nsB, "ip", "link", "set", b, "up");
  }

  /** Kills what was started and removes every namespace made (their links go with them). */
  cleanup(): void {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const ns of this.made.splice(0)) {
      // Anything still running inside would keep the namespace alive: none may be left.
      try {
        const pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split("\n").filter(Boolean);
        for (const pid of pids) process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone already
      }
      try {
        execFileSync("ip", ["netns", "del", ns]);
      } catch {
        // gone already
      }
    }
  }
}

/** Names of this host's namespaces, to check that a test left none behind. */
export function namespacesNamed(prefix: string): string[] {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(prefix));
}
