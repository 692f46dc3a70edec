/**
 * What an image file's own first bytes say about other files QEMU or qemu-img would open
 * with it, read by the agent itself before either of them sees the file. Disk images
 * come from uploads and imports (and a qcow2's header names its backing file), so these
 * are not trusted; the storage folder decides what each named file may be
 * (Storage.selfContained).
 *
 * Three ways an image reaches for another file:
 * - a qcow2 (or qcow) backing file: its name sits in the header (offset and length at
 *   8 and 16), its format in a header extension;
 * - a qcow2 external data file (incompatible feature bit 2, version 3): the guest's
 *   data lives in a file the header names, read and written as the disk;
 * - a VMDK text descriptor: a small text file whose extent lines name the files that
 *   hold the data ("RW 2048 FLAT "/any/file" 0"). A binary VMDK (magic KDMV) whose
 *   capacity is 0 and that points at a descriptor inside itself is read by QEMU as that
 *   descriptor, and counts as one. The other single-file binary VMDKs (KDMV or COWD:
 *   monolithicSparse, streamOptimized) hold their data themselves, but QEMU looks for a
 *   parent image in them as vmdk_parent_open does: it reads 10 KiB at byte 0x200 whatever
 *   the header says, as a C string (up to the first NUL), finds `parentFileNameHint`
 *   anywhere in it, skips two more characters without checking them and takes what
 *   follows up to the next `"` as a file name to open as the backing file. The check
 *   here reads the same bytes the same way, so no spelling QEMU accepts is missed.
 *
 * Everything here runs in time linear in the bytes read: the file is hostile, and the
 * agent checks it at every start.
 */
import fsp from "node:fs/promises";

/** What the header is, as far as these checks go. */
export type HeaderKind = "qcow" | "vmdk" | "vmdk-descriptor" | "other";

export interface ImageHeader {
  kind: HeaderKind;
  /** The backing file's name as written (qcow; a VMDK's parent), or null. */
  backing: string | null;
  /** The backing file's format from the header extension (qcow2 only), or null. */
  backingFormat: string | null;
  /** The image keeps its data in an external file (qcow2 v3, incompatible feature bit 2). */
  externalData: boolean;
}

/** Bytes read from the start of a file: a qcow2 header with its extensions, or a VMDK descriptor (QEMU reads at most 1 MiB; the extent lines come first in practice). */
const HEADER_BYTES = 64 * 1024;
/** QEMU refuses longer backing file names (`1023` in block/qcow2.c). */
const MAX_BACKING_NAME = 1023;

const QCOW_MAGIC = 0x514649fb; // "QFI\xfb", qcow and qcow2
const VMDK3_MAGIC = 0x434f5744; // "COWD"
const VMDK4_MAGIC = 0x4b444d56; // "KDMV"
const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;
/** Incompatible features QEMU knows: dirty, corrupt, external data file, compression type, extended L2. */
const QCOW2_KNOWN_INCOMPAT = 0b11111n;
const QCOW2_EXT_BACKING_FORMAT = 0xe2792aca;
const QCOW2_EXT_END = 0;

/**
 * Whether QEMU's vmdk driver would take this text for a descriptor when it probes a
 * file: its first line that is neither a comment nor blank is `version=1`, `2` or `3`
 * (vmdk_probe in block/vmdk.c). Any line that looks like an extent counts too, so a
 * descriptor is refused however it is laid out.
 */
function looksLikeVmdkDescriptor(head: Buffer): boolean {
  const text = head.toString("latin1");
  // The first line that is neither a comment nor blank (each skipped line starts with a
  // different character than the next alternative: no backtracking across lines).
  const first = FIRST_CONTENT_LINE.exec(text)![1]!.replace(/\r$/, "");
  if (/^version=[123]$/.test(first)) return true;
  // Then any extent line. Each line is tested once, only if it names an access mode, by an
  // anchored test free of overlapping repeats: linear in the text (one multi-line /^\s*…/m
  // over all of it backtracked across every run of blank lines: seconds for 64 KiB of them).
  for (const word of ["RW", "RDONLY", "NOACCESS"]) {
    // After a line is tested the search goes on past its end, so no character is looked at twice per word.
    for (let found = text.indexOf(word); found !== -1; ) {
      const start = text.lastIndexOf("\n", found) + 1;
      const newline = text.indexOf("\n", found);
      const end = newline === -1 ? text.length : newline;
      if (EXTENT_LINE.test(text.slice(start, end))) return true;
      found = newline === -1 ? -1 : text.indexOf(word, newline + 1);
    }
  }
  return false;
}

const FIRST_CONTENT_LINE = /^(?:(?:#[^\n]*|[ ]*\r?)\n)*([^\n]*)/;

/** An extent line as vmdk_parse_extents scans it: access, sectors, type, then a quoted file name. */
const EXTENT_LINE = /^[ \t\r\v\f]*(?:RW|RDONLY|NOACCESS)[ \t\r\v\f]+[+-]?\d+[ \t\r\v\f]+\S+[ \t\r\v\f]+"/;

/** Where and how much QEMU reads of a sparse VMDK (KDMV or COWD) when it looks for a parent (block/vmdk.c). */
const VMDK_PARENT_DESC_OFFSET = 0x200;
const VMDK_PARENT_DESC_SIZE = 10 * 1024;

/**
 * The parent file name QEMU would take from a sparse VMDK's bytes at 0x200, read as
 * vmdk_parent_open reads them; null when it finds no `parentFileNameHint`. A hint
 * without a closing quote makes QEMU refuse the image: it is returned as it stands, so
 * the check refuses it too.
 */
function vmdkParentHint(area: Buffer): string | null {
  const nul = area.indexOf(0);
  const text = (nul === -1 ? area : area.subarray(0, nul)).toString("latin1");
  const at = text.indexOf("parentFileNameHint");
  if (at === -1) return null;
  // sizeof("parentFileNameHint") + 1: the name, its NUL, one more; usually `="`, never checked.
  const start = at + "parentFileNameHint".length + 2;
  const end = text.indexOf('"', start);
  return end === -1 ? text.slice(start) : text.slice(start, end);
}

/** The header facts of an image from its first bytes (`head`) and a reader for bytes further in. */
export async function parseImageHeader(head: Buffer, readAt: (offset: number, length: number) => Promise<Buffer>): Promise<ImageHeader> {
  const none: ImageHeader = { kind: "other", backing: null, backingFormat: null, externalData: false };
  if (head.length >= 4) {
    const magic = head.readUInt32BE(0);
    if (magic === VMDK3_MAGIC) return { ...none, kind: "vmdk", backing: await sparseVmdkParent(head, readAt) };
    if (magic === VMDK4_MAGIC && head.length >= 44) return parseVmdk4(head, readAt);
    if (magic === QCOW_MAGIC && head.length >= 20) return parseQcow(head, readAt);
  }
  return looksLikeVmdkDescriptor(head) ? { ...none, kind: "vmdk-descriptor" } : none;
}

/**
 * A KDMV header (little-endian, after the magic: version, flags, capacity at 12,
 * granularity, descriptor offset at 28, in 512-byte sectors), as vmdk_open_vmdk4 reads it.
 */
async function parseVmdk4(head: Buffer, readAt: (offset: number, length: number) => Promise<Buffer>): Promise<ImageHeader> {
  const capacity = head.readBigUInt64LE(12);
  const descOffset = head.readBigUInt64LE(28);
  // QEMU then opens the file as the descriptor found there, extents and all.
  if (capacity === 0n && descOffset !== 0n) return { kind: "vmdk-descriptor", backing: null, backingFormat: null, externalData: false };
  return { kind: "vmdk", backing: await sparseVmdkParent(head, readAt), backingFormat: null, externalData: false };
}

/** The parent a sparse VMDK (KDMV or COWD) names where QEMU looks for one, or null. */
async function sparseVmdkParent(head: Buffer, readAt: (offset: number, length: number) => Promise<Buffer>): Promise<string | null> {
  const end = VMDK_PARENT_DESC_OFFSET + VMDK_PARENT_DESC_SIZE;
  const area = end <= head.length ? head.subarray(VMDK_PARENT_DESC_OFFSET, end) : await readAt(VMDK_PARENT_DESC_OFFSET, VMDK_PARENT_DESC_SIZE);
  return vmdkParentHint(area);
}

async function parseQcow(head: Buffer, readAt: (offset: number, length: number) => Promise<Buffer>): Promise<ImageHeader> {
  const version = head.readUInt32BE(4);
  // QEMU opens nothing for a header it refuses (a version it does not know, incompatible
  // features it lacks): nothing is named, and qemu-img gives its own reason.
  if (version < 1 || version > 3) return { kind: "qcow", backing: null, backingFormat: null, externalData: false };
  if (version === 3 && head.length >= 80 && (head.readBigUInt64BE(72) & ~QCOW2_KNOWN_INCOMPAT) !== 0n) {
    return { kind: "qcow", backing: null, backingFormat: null, externalData: false };
  }
  const backingOffset = head.readBigUInt64BE(8);
  const backingSize = head.readUInt32BE(16);
  let backing: string | null = null;
  if (backingOffset !== 0n && backingSize > 0) {
    // A name QEMU would refuse to read is refused here as well, as a name no image has.
    const size = Math.min(backingSize, MAX_BACKING_NAME + 1);
    const at = Number(backingOffset);
    const bytes = at + size <= head.length ? head.subarray(at, at + size) : await readAt(at, size);
    backing = bytes.toString("utf8");
  }
  let externalData = false;
  let backingFormat: string | null = null;
  // Extensions end where the backing name starts, or at the end of the first cluster (qcow2_do_open).
  const extensionsEnd = backingOffset !== 0n ? Number(backingOffset) : 2 ** head.readUInt32BE(20);
  if (version >= 3 && head.length >= 104) {
    externalData = (head.readBigUInt64BE(72) & QCOW2_INCOMPAT_DATA_FILE) !== 0n;
    backingFormat = qcow2BackingFormat(head, head.readUInt32BE(100), extensionsEnd);
  } else if (version === 2) {
    backingFormat = qcow2BackingFormat(head, 72, extensionsEnd);
  }
  return { kind: "qcow", backing, backingFormat, externalData };
}

/**
 * The backing format header extension as QEMU takes it (qcow2_read_extensions):
 * extensions follow the header, 8-byte aligned, up to `end`; a later one of the same
 * type replaces an earlier one. Records past the bytes read (a header's cluster is up to
 * 2 MiB) leave the format unknown: null, which the checks read as "any format".
 */
function qcow2BackingFormat(head: Buffer, headerLength: number, end: number): string | null {
  let format: string | null = null;
  let at = headerLength;
  while (at + 8 <= end) {
    // Past the bytes read, a later record could still change it: unknown (the strictest reading).
    if (at + 8 > head.length) return null;
    const type = head.readUInt32BE(at);
    const length = head.readUInt32BE(at + 4);
    if (type === QCOW2_EXT_END) break;
    if (at + 8 + length > head.length) return null;
    if (type === QCOW2_EXT_BACKING_FORMAT) format = head.subarray(at + 8, at + 8 + length).toString("latin1");
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return format;
}

/** The header facts of an image file (reads at most HEADER_BYTES plus a backing name). */
export async function readImageHeader(file: string): Promise<ImageHeader> {
  const handle = await fsp.open(file, "r");
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(head, 0, HEADER_BYTES, 0);
    return await parseImageHeader(head.subarray(0, bytesRead), async (offset, length) => {
      const buf = Buffer.alloc(length);
      const { bytesRead: n } = await handle.read(buf, 0, length, offset);
      return buf.subarray(0, n);
    });
  } finally {
    await handle.close();
  }
}
