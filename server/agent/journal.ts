/**
 * The agent's journal of tasks in progress, so an agent killed in the middle of one
 * (SIGKILL, a power cut, the OOM killer) leaves nothing behind once it starts again.
 *
 * Every task has an entry, `<dataDir>/journal/<task id>.json`, written (and synced)
 * before its work begins and removed when it has ended. A task makes every new file
 * under a temporary name of its own in the file's folder (`.<name>.<task id>.new`:
 * not a valid image name, so nothing lists, registers or overwrites it), named in the
 * entry *before* the file exists, and puts it in place at the end with link() (never
 * over an existing file). The entry also names the processes the task started
 * (qemu-img), with their start times.
 *
 * At start, before it serves anyone, the agent `recover`s: each entry left over stops
 * its processes (only those that still are what was started: the same pid and start
 * time; and any whose command line names one of its temporaries, which covers one started
 * the instant before the agent died), removes its temporaries, and removes the files a commit had already linked
 * when the commit did not finish (the same inode as the temporary). Since every name in
 * an entry contains the task's own id, recovery never removes a file the task did not
 * make.
 */
import fs from "node:fs";
import path from "node:path";
import { GuesthouseError } from "../domain/errors";

interface Entry {
  task: string;
  kind: string;
  title: string;
  startedAt: number;
  /** New files: made under `temp`, put in place as `final` by a commit. */
  made: Array<{ temp: string; final: string }>;
  /** The commit linked every final: the files are complete. */
  committed: boolean;
  processes: Array<{ pid: number; startTicks: string }>;
}

/** Task ids as Tasks makes them; anything else in the folder is not the journal's. */
const TASK_ID = /^t[0-9a-z]{1,16}[0-9a-f]{10}$/;

/** A temporary's name in a message, as the name it stands for (people never see temporaries). */
export function finalNames(text: string): string {
  return text.replace(/\.([^/\s"']+?)\.t[0-9a-z]{1,16}[0-9a-f]{10}\.new\b/g, "$1");
}

export class Journal {
  private readonly entries = new Map<string, Entry>();

  /** `dir` null: kept in memory only (unit tests of the task runner). */
  constructor(readonly dir: string | null) {
    if (dir) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Records a task before its work begins. */
  begin(task: string, kind: string, title: string): void {
    this.entries.set(task, { task, kind, title, startedAt: Date.now(), made: [], committed: false, processes: [] });
    this.write(task);
  }

  /**
   * A temporary path for `final` (an absolute path in a folder the agent owns), written
   * down before anything exists there.
   */
  temporary(task: string, final: string): string {
    const entry = this.entry(task);
    const temp = path.join(path.dirname(final), `.${path.basename(final)}.${task}.new`);
    entry.made.push({ temp, final });
    this.write(task);
    return temp;
  }

  /** A process the task started, so a restarted agent can stop it if it outlived its agent. */
  spawned(task: string, pid: number): void {
    const entry = this.entries.get(task);
    const startTicks = processStart(pid);
    if (!entry || startTicks === null) return;
    entry.processes.push({ pid, startTicks });
    this.write(task);
  }

  /**
   * Puts every temporary of the task in place, all or none: each is linked to its final
   * name (never over an existing file: a name taken meanwhile is a conflict, and the
   * finals already linked are taken back), then the temporaries go.
   */
  async commit(task: string): Promise<void> {
    const entry = this.entry(task);
    const linked: string[] = [];
    for (const { temp, final } of entry.made) {
      try {
        fs.linkSync(temp, final);
        linked.push(final);
      } catch (err) {
        for (const file of linked) fs.rmSync(file, { force: true });
        if ((err as NodeJS.ErrnoException).code === "EEXIST") {
          throw new GuesthouseError("conflict", `"${path.basename(final)}" appeared meanwhile; what this task made was not kept.`);
        }
        throw err;
      }
    }
    entry.committed = true;
    this.write(task);
    for (const { temp } of entry.made) fs.rmSync(temp, { force: true });
    for (const dir of new Set(entry.made.map((m) => path.dirname(m.final)))) syncFolder(dir);
  }

  /** The task has ended: what it did not commit goes, and so does its entry. */
  end(task: string): void {
    const entry = this.entries.get(task);
    if (!entry) return;
    for (const { temp } of entry.made) fs.rmSync(temp, { force: true });
    this.entries.delete(task);
    if (this.dir) fs.rmSync(this.file(task), { force: true });
  }

  /**
   * Undoes what tasks of an earlier agent left unfinished (see the top of this file).
   * Returns one line per task, saying what was done.
   */
  recover(): string[] {
    const lines: string[] = [];
    if (!this.dir) return lines;
    for (const name of fs.readdirSync(this.dir).sort()) {
      const file = path.join(this.dir, name);
      const task = name.replace(/\.json$/, "");
      if (!TASK_ID.test(task)) {
        // A half-written entry (`.json.tmp`): its task had not begun its work.
        if (name.endsWith(".json.tmp") && TASK_ID.test(name.slice(0, -".json.tmp".length))) fs.rmSync(file, { force: true });
        continue;
      }
      let entry: Entry;
      try {
        entry = JSON.parse(fs.readFileSync(file, "utf8")) as Entry;
      } catch {
        lines.push(`journal entry ${name} is unreadable; left in place`);
        continue;
      }
      const done: string[] = [];
      const stop = (pid: number) => {
        try {
          process.kill(pid, "SIGKILL");
          done.push(`stopped process ${pid}`);
        } catch {
          // gone meanwhile
        }
      };
      const stopped = new Set<number>();
      for (const { pid, startTicks } of entry.processes ?? []) {
        if (Number.isInteger(pid) && pid > 1 && processStart(pid) === startTicks) {
          stopped.add(pid);
          stop(pid);
        }
      }
      // A process started in the instant before the agent died, before its pid was written
      // down, is found by the temporary it writes (a name only this task uses).
      // Only names of this task's own making: the temporary carries the task's id.
      const made = (entry.made ?? []).filter(({ temp, final }) => path.basename(temp) === `.${path.basename(final)}.${task}.new` && path.dirname(temp) === path.dirname(final));
      for (const pid of processesNaming(made.map((m) => m.temp))) if (!stopped.has(pid)) stop(pid);
      for (const { temp, final } of made) {
        const tempStat = fs.statSync(temp, { throwIfNoEntry: false });
        if (!tempStat) continue;
        const finalStat = fs.lstatSync(final, { throwIfNoEntry: false });
        if (!entry.committed && finalStat && finalStat.ino === tempStat.ino && finalStat.dev === tempStat.dev) {
          fs.rmSync(final, { force: true });
          done.push(`removed ${path.basename(final)}`);
        }
        fs.rmSync(temp, { force: true });
        done.push(`removed the unfinished ${path.basename(final)}`);
      }
      fs.rmSync(file, { force: true });
      lines.push(`task ${entry.task} (${entry.title}) was running when the agent stopped${done.length ? `: ${done.join(", ")}` : "; it had left nothing"}`);
    }
    return lines;
  }

  private entry(task: string): Entry {
    const entry = this.entries.get(task);
    if (!entry) throw new Error(`journal: task ${task} has no entry`);
    return entry;
  }

  private file(task: string): string {
    return path.join(this.dir ?? "", `${task}.json`);
  }

  /** Replaces the entry's file atomically and durably. */
  private write(task: string): void {
    if (!this.dir) return;
    const file = this.file(task);
    const temp = `${file}.tmp`;
    const fd = fs.openSync(temp, "w", 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(this.entries.get(task)));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
    syncFolder(this.dir);
  }
}

/** Processes (other than this one) whose command line contains one of `names`. */
function processesNaming(names: string[]): number[] {
  if (names.length === 0) return [];
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (names.some((name) => cmdline.includes(name))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** When a process started (field 22 of /proc/<pid>/stat, in clock ticks since boot), or null when there is none. */
function processStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count from the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Makes a folder's entries (a rename, a new link) durable. */
function syncFolder(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
