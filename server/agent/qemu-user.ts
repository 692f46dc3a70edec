/**
 * Who QEMU runs as, and what it can reach. Each guest's QEMU runs as a user of its own:
 * a uid from GUESTHOUSE_QEMU_UIDS that no other guest (and no other process on the
 * host) has while it runs, with the kvm group (so it can open /dev/kvm) and no other.
 * It opens no image, ISO, log or secret by name: the agent opens them and hands the
 * descriptors over (server/qemu/args.ts builds the matching `-add-fd` arguments), so
 * every file of the host stays out of its reach, other guests' images included. Its
 * only folder is the guest's run folder, where it makes its sockets at start; the agent
 * takes that folder back before the guest's first instruction runs.
 *
 * An agent that does not run as root cannot switch users: its QEMUs run as itself
 * (they still get descriptors, not names), and the host's info says so.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { GuesthouseError } from "../domain/errors";
import type { PassedDescriptor } from "../qemu/args";

/** A uid and gid a QEMU runs as. */
export interface QemuIdentity {
  uid: number;
  gid: number;
}

/** GUESTHOUSE_QEMU_UIDS, the range guests' QEMUs take uids from. */
export interface UidRange {
  firstUid: number;
  lastUid: number;
}

/** "200000-200999": the uids QEMU may run as; at least two (the last is the KVM probe's). */
export function parseUidRange(text: string): UidRange {
  const match = /^\s*(\d{1,10})\s*-\s*(\d{1,10})\s*$/.exec(text);
  const firstUid = match ? Number(match[1]) : NaN;
  const lastUid = match ? Number(match[2]) : NaN;
  // 65534 is nobody; uids past 2^31 confuse too many tools; 1000 and below are the system's and people's.
  if (!(firstUid > 1000 && lastUid > firstUid && lastUid < 2 ** 31 && (lastUid < 65534 || firstUid > 65534))) {
    throw new Error(`GUESTHOUSE_QEMU_UIDS: "${text}" is not a range of at least two unused uids such as 200000-200999 (above 1000, not containing 65534).`);
  }
  return { firstUid, lastUid };
}

/**
 * Refuses a range that holds an account of the host or another program's subordinate
 * ids (/etc/subuid, /etc/subgid: containers): a QEMU must share its uid with nothing.
 */
export function assertUidRangeUnused(range: UidRange, files = { passwd: "/etc/passwd", subuid: "/etc/subuid", subgid: "/etc/subgid" }): void {
  const overlaps = (first: number, last: number) => first <= range.lastUid && range.firstUid <= last;
  const label = `GUESTHOUSE_QEMU_UIDS (${range.firstUid}-${range.lastUid})`;
  for (const line of readLines(files.passwd)) {
    const [name, , uid] = line.split(":");
    const n = Number(uid);
    if (name && Number.isInteger(n) && overlaps(n, n)) throw new Error(`${label} holds the uid ${n} of the account "${name}". Choose a range no account uses.`);
  }
  for (const file of [files.subuid, files.subgid]) {
    for (const line of readLines(file)) {
      const [name, start, count] = line.split(":");
      const first = Number(start);
      const size = Number(count);
      if (name && Number.isInteger(first) && Number.isInteger(size) && size > 0 && overlaps(first, first + size - 1)) {
        throw new Error(`${label} overlaps the subordinate ids ${first}-${first + size - 1} of "${name}" in ${file}. Choose a range outside them.`);
      }
    }
  }
}

function readLines(file: string): string[] {
  try {
    return fs.readFileSync(file, "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
  } catch {
    return [];
  }
}

/** The gid of a group in /etc/group, or null. */
export function groupId(name: string, file = "/etc/group"): number | null {
  for (const line of readLines(file)) {
    const [group, , gid] = line.split(":");
    if (group === name && /^\d+$/.test(gid ?? "")) return Number(gid);
  }
  return null;
}

/** The real uid a process runs as (from /proc), or null when it is gone. */
export function uidOfPid(pid: number): number | null {
  try {
    const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return uid === undefined ? null : Number(uid);
  } catch {
    return null;
  }
}

/** The real gid a process runs as (from /proc), or null when it is gone. */
export function gidOfPid(pid: number): number | null {
  try {
    const gid = /^Gid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return gid === undefined ? null : Number(gid);
  } catch {
    return null;
  }
}

/** Every uid some process of the host runs as now. */
function uidsRunning(): Set<number> {
  const uids = new Set<number>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const uid = uidOfPid(Number(entry));
    if (uid !== null) uids.add(uid);
  }
  return uids;
}

/**
 * Hands out QEMU's identities. The range's last uid is the KVM probe's; each guest
 * gets the lowest other uid that no guest holds and no process runs as.
 */
export class QemuUsers {
  /** Null when the agent cannot switch users (it is not root): QEMU then runs as the agent. */
  constructor(
    readonly range: UidRange | null,
    /** The kvm group's gid, or null when the host has none (each QEMU then gets gid = uid). */
    readonly kvmGid: number | null,
  ) {}

  /** The users for this agent: a range only when it runs as root. */
  static forAgent(range: UidRange): QemuUsers {
    return new QemuUsers(process.getuid?.() === 0 ? range : null, groupId("kvm"));
  }

  private identity(uid: number): QemuIdentity {
    return { uid, gid: this.kvmGid ?? uid };
  }

  /** The KVM probe's identity (null: the agent's own). */
  probe(): QemuIdentity | null {
    return this.range ? this.identity(this.range.lastUid) : null;
  }

  /** A free identity for a guest's QEMU, given the uids other guests hold; null: the agent's own. */
  claim(held: Iterable<number>): QemuIdentity | null {
    if (!this.range) return null;
    const taken = uidsRunning();
    for (const uid of held) taken.add(uid);
    for (let uid = this.range.firstUid; uid < this.range.lastUid; uid++) {
      if (!taken.has(uid)) return this.identity(uid);
    }
    throw new GuesthouseError(
      "conflict",
      `Every uid of GUESTHOUSE_QEMU_UIDS (${this.range.firstUid}-${this.range.lastUid - 1}) is taken by a running guest; stop one, or give the agent a wider range.`,
    );
  }

  /** In words, for the host's info: "uids 200000-200998, group kvm" or why not. */
  describe(): string {
    if (!this.range) return "the agent's own user (the agent is not root, so it cannot give QEMU users of its own)";
    return `a user of its own per guest (uids ${this.range.firstUid}-${this.range.lastUid - 1}), group ${this.kvmGid === null ? "of the same number" : `kvm (${this.kvmGid})`}`;
  }
}

/**
 * Makes a guest's run folder afresh, QEMU's for its start: empty, 0700, owned by its
 * identity (when it has one). The folders above it must let QEMU through (checked at
 * agent start, assertRunDirReachable).
 */
export async function prepareRunDir(dir: string, identity: QemuIdentity | null): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(path.dirname(dir), { recursive: true, mode: 0o711 });
  await fsp.mkdir(dir, { mode: 0o700 });
  if (identity) await fsp.chown(dir, identity.uid, identity.gid);
}

/**
 * Takes a guest's run folder back from QEMU once it has made its sockets: the agent's,
 * 0700. From then on QEMU can add, remove or swap nothing in it (a QEMU a guest took
 * over cannot put another guest's socket where the agent looks for its own).
 */
export async function lockRunDir(dir: string): Promise<void> {
  await fsp.chown(dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  await fsp.chmod(dir, 0o700);
}

/**
 * Refuses a run folder QEMU's users could not reach: every folder above it must be
 * searchable by others (a data folder under /root, 0700, is not).
 */
export function assertRunDirReachable(dir: string): void {
  let at = path.resolve(dir);
  for (;;) {
    const parent = path.dirname(at);
    if (parent === at) return;
    at = parent;
    let mode: number;
    try {
      mode = fs.statSync(at).mode;
    } catch {
      continue; // made later, 0711
    }
    if ((mode & 0o001) === 0) {
      throw new Error(
        `GUESTHOUSE_RUN_DIR (${dir}): QEMU's users cannot reach it, because ${at} is not searchable by other users (mode ${(mode & 0o777).toString(8).padStart(4, "0")}). Choose a folder they can reach, such as /run/guesthouse.`,
      );
    }
  }
}

/** open(2) flags of each way a file is handed to QEMU (never following a symlink). */
const OPEN_FLAGS: Record<PassedDescriptor["mode"], number> = {
  "read-write": fs.constants.O_RDWR | fs.constants.O_NOFOLLOW,
  "read-only": fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW,
  append: fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW,
};

/**
 * Opens the files a launch hands to QEMU, in order. On a failure every descriptor
 * opened so far is closed again, and the error names the file.
 */
export function openDescriptors(descriptors: PassedDescriptor[]): number[] {
  const fds: number[] = [];
  try {
    for (const d of descriptors) {
      try {
        fds.push(fs.openSync(d.path, OPEN_FLAGS[d.mode], 0o600));
      } catch (err) {
        throw new GuesthouseError("qemu-failed", `The agent could not open ${path.basename(d.path)} for QEMU (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`, d.path);
      }
    }
    return fds;
  } catch (err) {
    closeAll(fds);
    throw err;
  }
}

export function closeAll(fds: number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      // closed already
    }
  }
}
