/**
 * A cgroup of its own for each guest's QEMU, so the kernel tells how much it stalled
 * for CPU, memory and I/O (pressure stall information, the cgroup's *.pressure files).
 *
 * Where: `<cgroup v2 mount>/guesthouse/<guest id>` (GUESTHOUSE_CGROUP names another parent,
 * or "off"). The v2 hierarchy is the only one with pressure files; on a hybrid host it is
 * mounted at /sys/fs/cgroup/unified, on a current one at /sys/fs/cgroup. No controller is
 * enabled: the cgroup only groups QEMU's threads for accounting, it limits nothing. A host
 * without a writable v2 hierarchy (an unprivileged agent, an old kernel, PSI off) runs
 * guests all the same; their pressure is reported as unavailable, with why.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

const PRESSURES = ["cpu", "memory", "io"] as const;

export class GuestCgroups {
  private constructor(
    /** The parent of the guests' cgroups, or null when there is none. */
    readonly root: string | null,
    /** Why guests get no cgroup here (null when they do). */
    readonly unavailable: string | null,
  ) {}

  /** Finds (and makes) the parent: `setting` is GUESTHOUSE_CGROUP (unset: automatic; "off": none). */
  static detect(setting: string | undefined, mountinfo = readMountinfo()): GuestCgroups {
    if (setting === "off") return new GuestCgroups(null, "Guests' cgroups are turned off (GUESTHOUSE_CGROUP=off).");
    let root = setting;
    if (!root) {
      const mount = cgroup2Mount(mountinfo);
      if (!mount) return new GuestCgroups(null, "This host has no cgroup v2 hierarchy mounted, so the kernel keeps no pressure per guest.");
      root = path.join(mount, "guesthouse");
    }
    // Only the last folder is made, inside a cgroup v2 folder that exists (a recursive
    // mkdir would try to make the hierarchy's mount point itself where it is not mounted).
    if (!fs.existsSync(path.join(path.dirname(root), "cgroup.procs"))) {
      return new GuestCgroups(null, `${path.dirname(root)} is not a folder of a cgroup v2 hierarchy here, so the kernel keeps no pressure per guest.`);
    }
    try {
      fs.mkdirSync(root);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EEXIST") return new GuestCgroups(null, `The agent cannot make ${root} (${code ?? String(err)}): run it as root for per-guest pressure.`);
    }
    if (!fs.existsSync(path.join(root, "cpu.pressure"))) {
      return new GuestCgroups(null, "The kernel keeps no pressure stall information (PSI is off: boot with psi=1).");
    }
    return new GuestCgroups(root, null);
  }

  /** The guest's cgroup folder, or null on a host without them. */
  dirOf(id: string): string | null {
    return this.root ? path.join(this.root, id) : null;
  }

  /**
   * Moves a QEMU process (all its threads) into the guest's cgroup. A failure is said and
   * costs only the guest's pressure figures, never its start.
   */
  async place(id: string, pid: number): Promise<void> {
    const dir = this.dirOf(id);
    if (!dir) return;
    try {
      await fsp.mkdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "EEXIST") throw err;
      });
      await fsp.writeFile(path.join(dir, "cgroup.procs"), `${pid}\n`);
    } catch (err) {
      console.error(`agent: guest ${id}: its QEMU could not be put in ${dir}; its pressure will not be known:`, err instanceof Error ? err.message : err);
    }
  }

  /** Removes an empty guest cgroup (its QEMU has exited); a cgroup still holding a process stays. */
  async remove(id: string): Promise<void> {
    const dir = this.dirOf(id);
    if (!dir) return;
    await fsp.rmdir(dir).catch(() => {});
  }

  /** The files to read a guest's pressure from, or null without a cgroup of its own. */
  pressureFiles(id: string): Record<(typeof PRESSURES)[number], string> | null {
    const dir = this.dirOf(id);
    if (!dir) return null;
    return Object.fromEntries(PRESSURES.map((p) => [p, path.join(dir, `${p}.pressure`)])) as Record<(typeof PRESSURES)[number], string>;
  }
}

function readMountinfo(): string {
  try {
    return fs.readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return "";
  }
}

/** Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo ("… - cgroup2 …"). */
export function cgroup2Mount(mountinfo: string): string | null {
  for (const line of mountinfo.split("\n")) {
    const [before, after] = line.split(" - ");
    if (!after?.startsWith("cgroup2 ")) continue;
    const mountPoint = before?.split(" ")[4];
    if (mountPoint) return mountPoint.replace(/\\040/g, " ");
  }
  return null;
}
