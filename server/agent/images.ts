/**
 * Disk images and ISO images on this host, through `qemu-img`. Every name arrives as
 * a storage folder's name and a file name and becomes a path only in Storage; every
 * operation that writes is a task holding the images it touches; whatever a failed or
 * cancelled operation had written is removed.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GuesthouseError } from "../domain/errors";
import { formatBytes } from "../domain/format";
import { isDiskFormat, type DiskFormat, type ImageInfo, type IsoInfo, type SnapshotInfo, type TaskStatus, type UploadPart } from "../domain/types";
import { optValue, secretPath } from "../qemu/args";
import { ISO_POOL, type AgentConfig } from "./config";
import { basedOnAnother, MAX_BACKING_CHAIN, PART_SUFFIX, Storage } from "./storage";
import { runQemuImg, type Tasks, type TaskContext } from "./tasks";

/** The guest, if any, whose running QEMU has an image open; and what it can do live. */
export interface LiveDisks {
  userOf(pool: string, file: string): { guestId: string; volume: string } | null;
  /** QMP block_resize on the running guest's disk. */
  resize(guestId: string, volume: string, bytes: number): Promise<void>;
  /** Internal snapshots of a running guest, with its memory state. */
  snapshot(guestId: string, op: "create" | "revert" | "delete", name: string): Promise<void>;
}

export interface ImageRef {
  pool: string;
  file: string;
}

/** A registered disk's image: with the format it was registered in, which every operation opens it as (never a guess from its bytes). */
export interface DiskRef extends ImageRef {
  format: DiskFormat;
}

export interface EncryptionRef {
  /** The volume whose passphrase file opens the image (encrypted images only). */
  volume?: string | undefined;
}

export const refKey = (ref: ImageRef) => `${ref.pool}/${ref.file}`;

/**
 * Bytes of an upload held for the part file while a write is in flight: the socket keeps
 * being read meanwhile, and what piled up goes to disk in one writev.
 */
const UPLOAD_WRITE_BUFFER_BYTES = 4 * 1024 * 1024;
/** An upload asks for writeback each time this much more has arrived. */
const UPLOAD_WRITEBACK_BYTES = 64 * 1024 * 1024;
/** `qemu-img info` reads headers only: a file it cannot read in this long is reported, not waited for. */
const INFO_TIMEOUT_MS = 30_000;
/** `qemu-img check` reads every table of a large image; it still ends. */
const CHECK_TIMEOUT_MS = 10 * 60_000;
/** How often an upload's task reports how far it got (Tasks passes on at most 4 a second anyway). */
const UPLOAD_PROGRESS_MS = 250;
/**
 * qemu-img times its LUKS key derivation with the thread's CPU clock, to pick an
 * iteration count. Where that clock is coarse it now and then measures 0 ms and gives
 * up ("Unable to get accurate CPU usage"; seen in 5 of 40 tries on a 2-core VM here);
 * another try measures again, and a failed one costs only milliseconds.
 */
const LUKS_TIMING_TRIES = 6;
const LUKS_TIMING_FAILURE = /Unable to get accurate CPU usage/;

/**
 * qemu-img's own account of the files one level of an image opened, checked after the
 * header checks as a second line: no external data file, and every VMDK extent is the
 * image file itself. A header the agent misread cannot get a foreign file past both.
 */
function otherFilesIn(level: Record<string, unknown>, file: string, name: string): void {
  const data = ((level["format-specific"] as { data?: Record<string, unknown> } | undefined)?.data ?? {}) as {
    "data-file"?: unknown;
    extents?: Array<{ filename?: unknown }>;
  };
  if (data["data-file"] !== undefined) {
    throw new GuesthouseError("invalid-input", `qemu-img reports that ${name} uses a data file of its own; only self-contained images are used.`);
  }
  for (const extent of data.extents ?? []) {
    if (typeof extent.filename !== "string" || path.resolve(extent.filename) !== path.resolve(file)) {
      throw new GuesthouseError("invalid-input", `qemu-img reports that ${name} reads its data from other files (VMDK extents); only single-file images are used.`);
    }
  }
}

export class Images {
  readonly storage: Storage;
  /** qemu-img info results by path, valid while size and mtime stay the same. */
  private readonly infoCache = new Map<string, { stamp: string; info: ImageInfo }>();
  /**
   * What running uploads still have to write, by storage folder: a new upload must fit
   * in the free space less these, or two uploads that each fit alone would both be let
   * in and one would find the folder full half-way.
   */
  private readonly reserved = new Map<string, Set<{ bytes: number }>>();

  /** Bytes running uploads into this folder still have to write. */
  reservedBytes(pool: string): number {
    let sum = 0;
    for (const r of this.reserved.get(pool) ?? []) sum += r.bytes;
    return sum;
  }

  constructor(
    private readonly config: AgentConfig,
    readonly tasks: Tasks,
    private readonly live: LiveDisks,
  ) {
    this.storage = new Storage(config);
  }

  private scrub = (text: string) => this.storage.scrub(text);

  /**
   * The options that open an image in `format`: plain, or through its secret when
   * encrypted. `imageOpts` for subcommands without -f (`qemu-img snapshot`).
   */
  private openArgs(file: string, format: DiskFormat, enc: EncryptionRef, { imageOpts = false } = {}): string[] {
    if (!enc.volume && !imageOpts) return ["-f", format, file];
    const opts = `driver=${format},file.filename=${optValue(file)}`;
    if (!enc.volume) return ["--image-opts", opts];
    return [
      "--object", `secret,id=sec0,format=raw,file=${optValue(secretPath(this.config, enc.volume))}`,
      "--image-opts", `${opts},encrypt.key-secret=sec0`,
    ];
  }

  /**
   * Where a task makes a new image: a temporary of the task's own beside the final name
   * (journaled, so an agent killed meanwhile leaves nothing), created empty; the task's
   * `commit` puts it in place, never over an existing file. The name is refused at once
   * when a file has it already.
   */
  private async reserve(ref: ImageRef, ctx: TaskContext): Promise<string> {
    const final = this.storage.pathOf(ref.pool, ref.file, "images");
    await fsp.mkdir(path.dirname(final), { recursive: true, mode: 0o700 });
    if (await fsp.lstat(final).catch(() => null)) {
      throw new GuesthouseError("conflict", `There is already an image "${ref.file}" in "${ref.pool}". Choose another name.`);
    }
    const temp = ctx.temporary(final);
    await (await fsp.open(temp, "wx", 0o600)).close();
    return temp;
  }

  /** Refuses changing an image a running guest has open (the live paths say so themselves). */
  private notInUse(ref: ImageRef, doing: string): void {
    const user = this.live.userOf(ref.pool, ref.file);
    if (user) throw new GuesthouseError("conflict", `${ref.file} is attached to a running guest; stop the guest before you ${doing}.`);
  }

  /** Creates a sparse image, optionally LUKS-encrypted qcow2; a failure leaves no file or secret behind. */
  async create(ref: ImageRef & { format: DiskFormat; bytes: number; volume: string; passphrase?: string | undefined }): Promise<ImageInfo> {
    if (ref.passphrase !== undefined && ref.format !== "qcow2") {
      throw new GuesthouseError("invalid-input", "Only qcow2 images can be encrypted.");
    }
    await this.tasks.run("create", `create ${refKey(ref)} (${formatBytes(ref.bytes)} ${ref.format})`, [refKey(ref)], async (ctx) => {
      const file = await this.reserve(ref, ctx);
      if (ref.passphrase !== undefined && (await fsp.lstat(secretPath(this.config, ref.volume)).catch(() => null))) {
        throw new GuesthouseError("conflict", `There is already a passphrase for the volume ${ref.volume}.`);
      }
      // The passphrase is made beside the image, under a temporary name, and put in place with it.
      const secret = ref.passphrase !== undefined ? ctx.temporary(secretPath(this.config, ref.volume)) : "";
      if (ref.passphrase !== undefined) {
        await fsp.mkdir(this.config.secretsDir, { recursive: true, mode: 0o700 });
        await fsp.writeFile(secret, ref.passphrase, { mode: 0o600, flag: "wx" });
        for (let attempt = 1; ; attempt++) {
          try {
            await runQemuImg(
              this.tasks.quick,
              ["create", "-q", "--object", `secret,id=sec0,format=raw,file=${optValue(secret)}`, "-f", "qcow2",
               "-o", "encrypt.format=luks,encrypt.key-secret=sec0", file, String(ref.bytes)],
              ctx, this.scrub,
            );
            break;
          } catch (err) {
            if (attempt >= LUKS_TIMING_TRIES || !(err instanceof GuesthouseError) || !LUKS_TIMING_FAILURE.test(err.message)) throw err;
            ctx.log(`qemu-img could not time its key derivation (this host's CPU clock is coarse); trying again (${attempt + 1} of ${LUKS_TIMING_TRIES})`);
          }
        }
      } else {
        await runQemuImg(this.tasks.quick, ["create", "-q", "-f", ref.format, file, String(ref.bytes)], ctx, this.scrub);
      }
      await ctx.commit();
      return `made ${ref.file}`;
    });
    return this.info(ref, ref.format);
  }

  /**
   * A new qcow2 image from an existing one: a full, sparse copy, or a linked clone
   * whose backing file is the source (which must then never change).
   */
  async clone(from: DiskRef, to: ImageRef, mode: "full" | "linked"): Promise<TaskStatus> {
    // info() checks the file (Storage.existing), its header and backing chain before qemu-img opens it.
    await this.info(from, from.format);
    const source = this.storage.pathOf(from.pool, from.file, "images");
    return this.tasks.run("clone", `${mode} clone ${refKey(from)} → ${refKey(to)}`, [refKey(from), refKey(to)], async (ctx) => {
      const file = await this.reserve(to, ctx);
      // A linked clone names its base relative to itself when both share a folder, so the pair can move together.
      const backing = from.pool === to.pool ? path.basename(source) : source;
      const args =
        mode === "linked"
          ? ["create", "-q", "-f", "qcow2", "-b", backing, "-F", from.format, file]
          : ["convert", "-f", from.format, "-O", "qcow2", source, file];
      await runQemuImg(mode === "full" ? this.tasks.jobs : this.tasks.quick, args, ctx, this.scrub, { progress: mode === "full" });
      await ctx.commit();
      return null;
    });
  }

  /**
   * What qemu-img says about an image (shared read: works while a guest runs it), with
   * the images under it. Disk images come from uploads and imports, so their headers are
   * not trusted: the chain is read one level at a time, and each backing file must be an
   * image in a storage folder (Storage.imageAt) before anything opens it. A registered
   * disk is read in its registered `format`; only files not yet registered are probed.
   */
  async info(ref: ImageRef, format: DiskFormat | null = null): Promise<ImageInfo> {
    const file = await this.storage.existing(ref.pool, ref.file, "images");
    const stat = await fsp.stat(file);
    const stamp = `${format ?? "probe"}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
    const cached = this.infoCache.get(file);
    if (cached?.stamp === stamp) return cached.info;
    const chain = await this.chainOf(file, ref.file, format);
    const top = chain[0] ?? {};
    const snapshots = ((top.snapshots as Array<Record<string, number | string>> | undefined) ?? []).map(
      (s): SnapshotInfo => ({
        id: String(s.id),
        name: String(s.name),
        date: Number(s["date-sec"]) * 1000 + Math.floor(Number(s["date-nsec"] ?? 0) / 1e6),
        vmStateBytes: Number(s["vm-state-size"] ?? 0),
      }),
    );
    const specific = (top["format-specific"] as { data?: Record<string, unknown> } | undefined)?.data ?? {};
    const info: ImageInfo = {
      pool: ref.pool,
      file: ref.file,
      format: String(top.format ?? "unknown"),
      virtualBytes: Number(top["virtual-size"] ?? 0),
      actualBytes: Number(top["actual-size"] ?? stat.blocks * 512),
      encrypted: Boolean(top.encrypted),
      backing: chain.slice(1).map((c) => path.basename(String(c.filename ?? "?"))),
      snapshots,
      dirty: Boolean(top["dirty-flag"]) || specific.corrupt === true,
      raw: JSON.parse(this.scrub(JSON.stringify(top))) as Record<string, unknown>,
    };
    this.infoCache.set(file, { stamp, info });
    return info;
  }

  /** `qemu-img info` of an image and of each backing file under it, checked level by level. */
  private async chainOf(top: string, name: string, topFormat: DiskFormat | null): Promise<Array<Record<string, unknown>>> {
    const chain: Array<Record<string, unknown>> = [];
    let file = top;
    let format: string | null = topFormat;
    for (;;) {
      // What the header names is checked before qemu-img opens the file (it would open an
      // external data file or a descriptor's extents with it).
      await this.storage.selfContained(file, name, format, { backing: "ignore" });
      // Without --backing-chain qemu-img does not open the backing file; with -f it does not guess.
      const out = await runQemuImg(this.tasks.quick, ["info", "-U", "--output=json", ...(format ? ["-f", format] : []), file], null, this.scrub, { timeoutMs: INFO_TIMEOUT_MS });
      let level: Record<string, unknown>;
      try {
        level = JSON.parse(out) as Record<string, unknown>;
      } catch {
        throw new GuesthouseError("qemu-failed", "qemu-img info printed something that is not JSON.");
      }
      otherFilesIn(level, file, name);
      chain.push(level);
      const backing = level["full-backing-filename"] ?? level["backing-filename"];
      if (typeof backing !== "string" || backing === "") return chain;
      if (chain.length >= MAX_BACKING_CHAIN) throw new GuesthouseError("invalid-input", `${name} sits on more than ${MAX_BACKING_CHAIN} backing files; it is not used.`);
      file = await this.storage.imageAt(path.resolve(path.dirname(file), backing), name);
      const backingFormat = level["backing-filename-format"];
      format = isDiskFormat(backingFormat) ? backingFormat : null;
    }
  }

  /**
   * Every image in every image folder, with qemu-img's facts (one call per host for the
   * disks page). `formats` names the registered disks' formats ("pool/file" → format):
   * those are read as registered; only the other files are probed.
   */
  async list(formats: ReadonlyMap<string, DiskFormat> = new Map()): Promise<Array<ImageInfo | (ImageRef & { error: string })>> {
    const out: Array<ImageInfo | (ImageRef & { error: string })> = [];
    for (const [pool, { content }] of Object.entries(this.storage.folders)) {
      if (content !== "images") continue;
      for (const file of await this.storage.list(pool)) {
        out.push(await this.info({ pool, file }, formats.get(`${pool}/${file}`) ?? null).catch((err: Error) => ({ pool, file, error: err.message })));
      }
    }
    return out;
  }

  /**
   * Converts into a new image (qcow2, raw, vmdk, vdi or vpc) with progress; cancelling
   * or failing removes the new file. Returns at once with the task.
   */
  convert(from: DiskRef, to: DiskRef, sourceEnc: EncryptionRef): TaskStatus {
    if (sourceEnc.volume) {
      throw new GuesthouseError("invalid-input", "Encrypted images cannot be converted: the copy would be written unencrypted.");
    }
    this.notInUse(from, "convert it");
    const { status } = this.tasks.start("convert", `convert ${refKey(from)} → ${refKey(to)} (${to.format})`, [refKey(from), refKey(to)], async (ctx) => {
      // info() checks the file (Storage.existing) and its backing chain before qemu-img convert reads through it.
      await this.info(from, from.format);
      const source = this.storage.pathOf(from.pool, from.file, "images");
      const file = await this.reserve(to, ctx);
      // The format the disk was registered with, never a guess: a raw disk's guest can write anything into it, a qcow2 header too.
      await runQemuImg(this.tasks.jobs, ["convert", "-f", from.format, "-O", to.format, source, file], ctx, this.scrub, { progress: true });
      await ctx.commit();
      return `wrote ${to.file}`;
    });
    return status;
  }

  /**
   * Grows (or, when `shrink` is confirmed and the format allows it, shrinks) an image:
   * offline with qemu-img, or live with QMP when a running guest has it open.
   */
  async resize(ref: DiskRef & { bytes: number; shrink: boolean } & EncryptionRef): Promise<ImageInfo> {
    const before = await this.info(ref, ref.format);
    const growing = ref.bytes >= before.virtualBytes;
    if (!growing && !ref.shrink) {
      throw new GuesthouseError(
        "invalid-input",
        `${formatBytes(ref.bytes)} is smaller than the disk (${formatBytes(before.virtualBytes)}). Shrinking cuts off data at the end; confirm it explicitly, after shrinking the file systems inside.`,
      );
    }
    if (!growing && !["qcow2", "raw"].includes(ref.format)) throw new GuesthouseError("invalid-input", `qemu-img cannot shrink ${ref.format} images.`);
    if (before.snapshots.length > 0 && ref.format === "qcow2" && !growing) {
      throw new GuesthouseError("invalid-input", "A qcow2 image with snapshots cannot be shrunk; delete its snapshots first.");
    }
    const user = this.live.userOf(ref.pool, ref.file);
    const title = `resize ${refKey(ref)} to ${formatBytes(ref.bytes)}${user ? " (live)" : ""}`;
    await this.tasks.run("resize", title, [refKey(ref)], async (ctx) => {
      if (user) {
        if (!growing) throw new GuesthouseError("conflict", "A disk in use by a running guest can only grow; stop the guest to shrink it.");
        await this.live.resize(user.guestId, user.volume, ref.bytes);
      } else {
        const file = await this.storage.existing(ref.pool, ref.file, "images");
        const args = ["resize", "-q", ...(growing ? [] : ["--shrink"]), ...this.openArgs(file, ref.format, ref), String(ref.bytes)];
        await runQemuImg(this.tasks.quick, args, ctx, this.scrub);
      }
      return `now ${formatBytes(ref.bytes)}`;
    });
    return this.info(ref, ref.format);
  }

  /** Internal qcow2 snapshots: offline through qemu-img, live (with memory) through QMP. */
  async snapshot(ref: DiskRef & EncryptionRef, op: "create" | "revert" | "delete", name: string): Promise<ImageInfo> {
    if (ref.format !== "qcow2") throw new GuesthouseError("invalid-input", `Only qcow2 images have snapshots; this one is ${ref.format}.`);
    const before = await this.info(ref, ref.format);
    const exists = before.snapshots.some((s) => s.name === name);
    if (op === "create" && exists) throw new GuesthouseError("conflict", `There is already a snapshot "${name}".`);
    if (op !== "create" && !exists) throw new GuesthouseError("not-found", `There is no snapshot "${name}".`);
    const user = this.live.userOf(ref.pool, ref.file);
    await this.tasks.run("snapshot", `${op} snapshot ${name} of ${refKey(ref)}${user ? " (live)" : ""}`, [refKey(ref)], async (ctx) => {
      if (user) {
        await this.live.snapshot(user.guestId, op, name);
      } else {
        const file = await this.storage.existing(ref.pool, ref.file, "images");
        const flag = { create: "-c", revert: "-a", delete: "-d" }[op];
        // `qemu-img snapshot` has no -f: the driver is named in --image-opts, so nothing is guessed.
        await runQemuImg(this.tasks.quick, ["snapshot", "-q", flag, name, ...this.openArgs(file, "qcow2", ref, { imageOpts: true })], ctx, this.scrub);
      }
      return null;
    });
    return this.info(ref, ref.format);
  }

  /** `qemu-img check`: consistency of a qcow2/vdi/vhdx image, reported in its own words. */
  async check(ref: DiskRef): Promise<{ ok: boolean; report: string }> {
    await this.info(ref, ref.format); // checks the file, its header and chain first
    const file = this.storage.pathOf(ref.pool, ref.file, "images");
    try {
      const out = await runQemuImg(this.tasks.jobs, ["check", "-U", "-f", ref.format, file], null, this.scrub, { timeoutMs: CHECK_TIMEOUT_MS });
      return { ok: true, report: out.trim() };
    } catch (err) {
      return { ok: false, report: (err as Error).message };
    }
  }

  /** Deletes an image file and its secret; refused while a running guest has it open. */
  async remove(ref: ImageRef & EncryptionRef): Promise<void> {
    this.notInUse(ref, "delete it");
    await this.tasks.run("delete", `delete ${refKey(ref)}`, [refKey(ref)], async () => {
      // Disk images only: ISOs are shared by everyone on the host and go through removeIso.
      const file = this.storage.pathOf(ref.pool, ref.file, "images");
      await fsp.rm(file, { force: true });
      if (ref.volume) await fsp.rm(secretPath(this.config, ref.volume), { force: true });
      this.infoCache.delete(file);
      return null;
    });
  }

  /** Bytes an interrupted upload already has on disk (0 when there is none). */
  async uploadOffset(ref: ImageRef): Promise<number> {
    const part = `${this.storage.pathOf(ref.pool, ref.file)}${PART_SUFFIX}`;
    const stat = await fsp.lstat(part).catch(() => null);
    return stat?.isFile() ? stat.size : 0;
  }

  /**
   * Receives an upload into `<file>.part`, then renames it into place. The body is
   * streamed to disk with backpressure (memory stays flat whatever the size) and hashed
   * on the way; writeback runs alongside, and the file and its folder are synced before
   * the answer, so an answered upload is on disk. Sizes over the limit or the free space
   * are refused before a byte is read: `onAccepted` runs only once every check passed and the part is open (the HTTP
   * handler answers `100 Continue` there). From `offset` > 0 it resumes an interrupted
   * upload. A connection that breaks keeps the part for resuming; a full disk or a
   * cancel removes it.
   */
  async receive(
    ref: ImageRef,
    body: Readable,
    size: number,
    offset: number,
    onAccepted: () => void = () => {},
  ): Promise<{ sha256: string; sizeBytes: number; format: string }> {
    const content = ref.pool === ISO_POOL ? "isos" : "images";
    const final = this.storage.pathOf(ref.pool, ref.file, content);
    if (content === "isos" && !ref.file.toLowerCase().endsWith(".iso")) throw new GuesthouseError("invalid-input", "Files in the ISO folder must end in .iso.");
    if (size > this.config.uploadLimitBytes) {
      throw new GuesthouseError("too-large", `The file is ${formatBytes(size)}; this host accepts uploads up to ${formatBytes(this.config.uploadLimitBytes)}.`);
    }
    if (await fsp.lstat(final).catch(() => null)) throw new GuesthouseError("conflict", `There is already a file "${ref.file}" in "${ref.pool}". Choose another name.`);
    const part = `${final}${PART_SUFFIX}`;
    const have = await this.uploadOffset(ref);
    if (offset !== have) {
      throw new GuesthouseError("conflict", have ? `An interrupted upload of "${ref.file}" has ${have} bytes; resume from there or cancel it.` : "There is no interrupted upload to resume.");
    }
    if (offset > size) throw new GuesthouseError("invalid-input", "The offset is past the end of the file.");
    const free = this.storage.freeBytes(ref.pool) - this.reservedBytes(ref.pool);
    if (size - offset > free) {
      const others = this.reservedBytes(ref.pool);
      throw new GuesthouseError(
        "too-large",
        `The storage folder "${ref.pool}" has ${formatBytes(Math.max(0, free))} free${others ? ` once the uploads running into it have arrived (they hold ${formatBytes(others)})` : ""}; the file needs ${formatBytes(size - offset)} more.`,
      );
    }
    // Held from this check on, shrinking as bytes land, until the upload ends either way.
    const reservation = { bytes: size - offset };
    const held = this.reserved.get(ref.pool) ?? new Set();
    this.reserved.set(ref.pool, held.add(reservation));
    try {
      return await this.receiveWithin(ref, body, size, offset, onAccepted, { content, final, part, reservation });
    } finally {
      held.delete(reservation);
    }
  }

  /** The upload itself, once it is accepted and its space reserved. */
  private async receiveWithin(
    ref: ImageRef,
    body: Readable,
    size: number,
    offset: number,
    onAccepted: () => void,
    at: { content: "isos" | "images"; final: string; part: string; reservation: { bytes: number } },
  ): Promise<{ sha256: string; sizeBytes: number; format: string }> {
    const { content, final, part, reservation } = at;
    let result = { sha256: "", sizeBytes: size, format: "iso" };
    await this.tasks.run("upload", `upload ${refKey(ref)} (${formatBytes(size)})`, [refKey(ref)], async (ctx) => {
      const hash = createHash("sha256");
      if (offset > 0) await pipeline(fs.createReadStream(part, { end: offset - 1, highWaterMark: UPLOAD_WRITE_BUFFER_BYTES }), hash, { end: false });
      // Opened before the body is asked for, so a part that cannot be written refuses the upload.
      const file = await fsp.open(part, offset > 0 ? "r+" : "wx", 0o600);
      // flush: the part is on disk (fsync) before the stream closes it; with the folder synced after
      // the rename, an answered upload survives a crash.
      const out = file.createWriteStream({ start: offset, highWaterMark: UPLOAD_WRITE_BUFFER_BYTES, flush: true });
      let received = offset;
      // Writeback runs alongside the upload (one fdatasync at a time, in the thread pool), so
      // little is left to write when it ends instead of the whole file.
      let flushedAt = offset;
      let flushing: Promise<void> | null = null;
      // A write error seen here (EIO; ENOSPC on some file systems) is reported once only: it fails the upload.
      let flushError: Error | null = null;
      const flushSome = () => {
        flushedAt = received;
        flushing = file.datasync().then(
          () => void (flushing = null),
          (err: Error) => {
            flushError = err;
            out.destroy(err);
          },
        );
      };
      // The hot path does only this per chunk; progress is read off `received` on a timer.
      const count = (chunk: Buffer) => {
        received += chunk.length;
        reservation.bytes = Math.max(0, size - received);
        if (received > size) body.destroy(new GuesthouseError("invalid-input", `The upload sent more than the ${size} bytes it announced.`));
        else hash.update(chunk);
        if (!flushing && received - flushedAt >= UPLOAD_WRITEBACK_BYTES) flushSome();
      };
      const progress = setInterval(() => ctx.progress(received / size), UPLOAD_PROGRESS_MS);
      const onAbort = () => body.destroy(new GuesthouseError("conflict", "Cancelled."));
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        if (ctx.signal.aborted) throw new GuesthouseError("conflict", "Cancelled.");
        body.on("data", count);
        onAccepted();
        await pipeline(body, out);
        await flushing;
        if (flushError) throw flushError;
      } catch (err) {
        out.destroy();
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOSPC" || code === "EDQUOT") {
          await fsp.rm(part, { force: true });
          throw new GuesthouseError("too-large", `The storage folder "${ref.pool}" filled up during the upload; nothing was kept. Free some space and try again.`);
        }
        if (ctx.signal.aborted || err instanceof GuesthouseError) await fsp.rm(part, { force: true });
        else ctx.log(`interrupted after ${received} bytes; the part is kept for resuming`);
        throw err instanceof GuesthouseError ? err : new GuesthouseError("invalid-input", `The upload was interrupted after ${formatBytes(received)}; resume it or cancel it.`);
      } finally {
        clearInterval(progress);
        body.off("data", count);
        ctx.signal.removeEventListener("abort", onAbort);
      }
      ctx.progress(received / size);
      if (received !== size) {
        throw new GuesthouseError("invalid-input", `The upload ended after ${formatBytes(received)} of ${formatBytes(size)}; resume it or cancel it.`);
      }
      let format = "iso";
      if (content === "images") {
        // The header is checked before qemu-img opens the part (a descriptor's extents, a data file).
        const out = await this.storage
          .selfContained(part, ref.file, null, { backing: "refuse" })
          .then(async () => {
            const json = await runQemuImg(this.tasks.quick, ["info", "--output=json", part], null, this.scrub, { timeoutMs: INFO_TIMEOUT_MS });
            // qemu-img reads backing file names of formats the header check does not know.
            let info: { format?: unknown; "backing-filename"?: unknown };
            try {
              info = JSON.parse(json) as typeof info;
            } catch {
              throw new GuesthouseError("qemu-failed", "qemu-img info printed something that is not JSON.");
            }
            if (info["backing-filename"] !== undefined) throw basedOnAnother(ref.file, info["backing-filename"]);
            return info;
          })
          .catch(async (err) => {
            await fsp.rm(part, { force: true });
            // What qemu-img cannot read is the file's fault, not the host's: said as such.
            if (err instanceof GuesthouseError && err.code === "qemu-failed") {
              throw new GuesthouseError("invalid-input", `${ref.file} was not kept: ${err.message.replace(/\.?$/, ".")}`, err.detail);
            }
            throw err;
          });
        format = String(out.format ?? "raw");
      }
      // link() refuses an existing name: nothing that appeared meanwhile is overwritten.
      await fsp.link(part, final).catch(async (err: NodeJS.ErrnoException) => {
        await fsp.rm(part, { force: true });
        throw err.code === "EEXIST" ? new GuesthouseError("conflict", `"${ref.file}" appeared in "${ref.pool}" meanwhile; the upload was discarded.`) : err;
      });
      await fsp.rm(part, { force: true });
      await syncFolder(path.dirname(final));
      result = { sha256: hash.digest("hex"), sizeBytes: size, format };
      return `sha256 ${result.sha256}`;
    });
    return result;
  }

  /** Interrupted uploads in every folder, oldest first, with when each expires. */
  async parts(): Promise<UploadPart[]> {
    return (await this.storage.parts()).map(({ pool, file, bytes, modifiedAt }) => ({
      pool,
      file,
      bytes,
      modifiedAt,
      expiresAt: modifiedAt + this.config.uploadPartMs,
      uploading: this.tasks.holder(refKey({ pool, file }))?.kind === "upload",
    }));
  }

  /**
   * Removes interrupted uploads that have not grown for GUESTHOUSE_UPLOAD_PART_HOURS,
   * each as a task holding its name, so an upload resuming it meanwhile is refused
   * rather than writing into a file that goes. A part an upload is writing is never
   * removed (it keeps growing). Returns what it removed ("pool/file").
   */
  async expireParts(now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const part of await this.parts()) {
      if (part.uploading || part.expiresAt > now) continue;
      const key = refKey(part);
      if (this.tasks.holder(key)) continue;
      const hours = Math.round((now - part.modifiedAt) / 360_000) / 10;
      await this.tasks
        .run("delete", `remove the interrupted upload ${key} (${formatBytes(part.bytes)}, untouched for ${hours} h)`, [key], async () => {
          // Looked at again under the hold: an upload may have resumed it since the listing.
          const stat = await fsp.lstat(`${this.storage.pathOf(part.pool, part.file)}${PART_SUFFIX}`).catch(() => null);
          if (!stat?.isFile() || stat.mtimeMs + this.config.uploadPartMs > now) return "kept: it grew again";
          await fsp.rm(`${this.storage.pathOf(part.pool, part.file)}${PART_SUFFIX}`, { force: true });
          removed.push(key);
          return "removed";
        })
        .catch((err: Error) => console.error(`agent: could not remove the interrupted upload ${key}:`, err.message));
    }
    return removed;
  }

  /** Cancels an upload: stops it if it runs and removes what it wrote. */
  async cancelUpload(ref: ImageRef): Promise<void> {
    const holder = this.tasks.holder(refKey(ref));
    if (holder?.kind === "upload") {
      this.tasks.cancel(holder.id);
      await this.tasks.ended(holder.id);
    }
    await fsp.rm(`${this.storage.pathOf(ref.pool, ref.file)}${PART_SUFFIX}`, { force: true });
  }

  async listIsos(): Promise<IsoInfo[]> {
    const isos: IsoInfo[] = [];
    for (const name of (await this.storage.list(ISO_POOL)).filter((n) => n.toLowerCase().endsWith(".iso"))) {
      const stat = await fsp.stat(path.join(this.config.isoDir, name)).catch(() => null);
      if (stat?.isFile()) isos.push({ name, sizeBytes: stat.size });
    }
    return isos;
  }

  async removeIso(name: string): Promise<void> {
    await fsp.rm(await this.storage.existing(ISO_POOL, name, "isos"));
  }
}

/** Makes a folder's entries durable (a new name in it survives a crash). */
async function syncFolder(dir: string): Promise<void> {
  const handle = await fsp.open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
