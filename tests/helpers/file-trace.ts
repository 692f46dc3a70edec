/**
 * Every file a process and its children touch, by name, while the trace runs: strace
 * attached to a running process (`-f`: qemu-img, QEMU and the descriptor helper it
 * starts are followed too), its file system calls read back as absolute paths, each
 * with the program that made it and whether it writes. The hostile suite checks them
 * against what the agent may touch.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { waitFor } from "./agent";

export interface FileAccess {
  pid: number;
  /** The program the process runs (the last execve seen for it), or "" when unknown. */
  program: string;
  syscall: string;
  path: string;
  /** It creates, changes or removes something (not only reads or looks). */
  writes: boolean;
  /** The call's result: "ok", an errno name, or "?" when strace did not see it end. */
  result: string;
}

/** System calls that change the file system whatever their flags. */
const WRITING = /^(mkdir|mkdirat|unlink|unlinkat|rmdir|rename|renameat|renameat2|link|linkat|symlink|symlinkat|chmod|fchmodat|chown|lchown|fchownat|truncate|utimensat|utimes|mknod|mknodat|creat)$/;
/** open flags that write. */
const WRITE_FLAGS = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/;

export class FileTrace {
  private constructor(
    private readonly strace: ChildProcess,
    private readonly log: string,
    private readonly cwd: string,
  ) {}

  /** Starts tracing `pid` (and every child it starts from now on); resolves once strace is attached. */
  static async attach(pid: number, log: string, cwd: string): Promise<FileTrace> {
    const strace = spawn("strace", ["-f", "-qq", "-y", "-s", "4096", "-e", "trace=%file,execve", "-o", log, "-p", String(pid)], { stdio: "ignore" });
    await waitFor("strace to attach", () => {
      if (strace.exitCode !== null) throw new Error(`strace exited with ${strace.exitCode}`);
      return /^TracerPid:\s*[1-9]/m.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    }, 10_000, 20);
    return new FileTrace(strace, log, cwd);
  }

  /** Stops tracing (the process goes on) and reads what was seen. */
  async stop(): Promise<FileAccess[]> {
    const exited = new Promise((resolve) => this.strace.once("exit", resolve));
    this.strace.kill("SIGINT");
    await exited;
    return parseStrace(fs.readFileSync(this.log, "utf8"), this.cwd);
  }
}

/** Reads `strace -f -y -o` output into accesses with absolute paths. */
export function parseStrace(text: string, cwd: string): FileAccess[] {
  const programs = new Map<number, string>();
  const accesses: FileAccess[] = [];
  for (const line of text.split("\n")) {
    const match = /^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$/.exec(line);
    if (!match) continue;
    const pid = Number(match[1]);
    // A resumed call's arguments were on its "unfinished" line, which is read there.
    if (match[2]) continue;
    const syscall = match[3]!;
    const rest = match[4]!;
    const result = /\) = 0$|\) = \d+/.test(rest) ? "ok" : (/= -1 (E[A-Z]+)/.exec(rest)?.[1] ?? "?");
    const args = splitArgs(rest);
    const paths: string[] = [];
    const resolve = (dirArg: string | undefined, name: string | undefined) => {
      // An empty name (AT_EMPTY_PATH) works on the descriptor itself: no name is looked up.
      if (name === undefined || name === "") return;
      if (name.startsWith("/")) return paths.push(path.normalize(name));
      const dir = dirArg && /^\d+<(.*)>$/.exec(dirArg)?.[1];
      paths.push(path.normalize(path.join(dir ?? cwd, name)));
    };
    if (syscall === "execve") {
      const program = unquote(args[0]);
      if (program !== undefined) {
        if (result !== "ok" && result !== "?") {
          accesses.push({ pid, program: programs.get(pid) ?? "", syscall, path: path.resolve(cwd, program), writes: false, result });
          continue;
        }
        programs.set(pid, path.basename(program));
        resolve(undefined, program);
      }
    } else if (/^(renameat2?|linkat)$/.test(syscall)) {
      resolve(args[0], unquote(args[1]));
      resolve(args[2], unquote(args[3]));
    } else if (/^(rename|link|symlink)$/.test(syscall)) {
      resolve(undefined, unquote(args[0]));
      resolve(undefined, unquote(args[1]));
    } else if (syscall === "symlinkat") {
      resolve(args[1], unquote(args[2]));
    } else if (/at$|at2$/.test(syscall) && args[0] !== undefined && !args[0].startsWith('"')) {
      resolve(args[0], unquote(args[1]));
    } else {
      const first = args.find((a) => a.startsWith('"'));
      resolve(undefined, unquote(first));
    }
    const writes = WRITING.test(syscall) || (/^open/.test(syscall) && WRITE_FLAGS.test(rest));
    for (const p of paths) accesses.push({ pid, program: programs.get(pid) ?? "", syscall, path: p, writes, result });
  }
  return accesses;
}

/** The top-level arguments of a call, split on commas outside quotes, brackets and braces. */
function splitArgs(text: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      current += c;
      if (c === "\\") current += text[++i] ?? "";
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === "(" || c === "[" || c === "{" || c === "<") depth++;
    else if (c === "]" || c === "}" || c === ">") depth--;
    else if (c === ")") {
      if (depth === 0) break;
      depth--;
    } else if (c === "," && depth === 0) {
      args.push(current.trim());
      current = "";
      continue;
    }
    current += c;
  }
  if (current.trim()) args.push(current.trim());
  return args;
}

/** A strace string argument ("…", with C escapes) as text; undefined for anything else. */
function unquote(arg: string | undefined): string | undefined {
  const match = arg === undefined ? null : /^"((?:[^"\\]|\\.)*)"(\.\.\.)?$/.exec(arg);
  if (!match) return undefined;
  return match[1]!.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    if (e[0] === "x") return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return ({ n: "\n", t: "\t", r: "\r", "\\": "\\", '"': '"' } as Record<string, string>)[e] ?? e;
  });
}
