/**
 * The view-only filter of the console bridge against a hostile client: a realistic
 * noVNC session with every message kind, cut at every byte position, fed a byte at
 * a time, and streams it must refuse.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PassThrough } from "node:stream";
import { RfbClientFilter, RfbFilterError, rfbViewOnlyStream } from "../../server/console/rfb-filter";

const u8 = (...bytes: number[]) => Buffer.from(bytes);
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const s32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cat = (...parts: Buffer[]) => Buffer.concat(parts);

// Client → server units, as noVNC and QEMU build them.
const VERSION = Buffer.from("RFB 003.008\n", "latin1");
const AUTH = Buffer.alloc(16, 0xab);
const SET_PIXEL_FORMAT = cat(u8(0, 0, 0, 0), u8(32, 24, 0, 1), u16(255), u16(255), u16(255), u8(0, 8, 16), u8(0, 0, 0));
const encodings = (list: number[]) => cat(u8(2, 0), u16(list.length), ...list.map(s32));
const SET_ENCODINGS = encodings([7, 16, 0, -223, -258, -316, -308, -312, -313]);
const SET_ENCODINGS_STRIPPED = encodings([7, 16, 0, -223, -258, -308, -312, -313]);
const FB_UPDATE_REQUEST = cat(u8(3, 0), u16(0), u16(0), u16(1024), u16(768));
const FB_UPDATE_INCREMENTAL = cat(u8(3, 1), u16(0), u16(0), u16(1024), u16(768));
const KEY_EVENT = cat(u8(4, 1, 0, 0), s32(0x61));
const POINTER_EVENT = cat(u8(5, 1), u16(100), u16(200));
const CUT_TEXT = (text: string) => cat(u8(6, 0, 0, 0), s32(Buffer.byteLength(text)), Buffer.from(text));
const EXTENDED_CUT_TEXT = cat(u8(6, 0, 0, 0), s32(-12), Buffer.alloc(12, 0x42));
const QEMU_KEY = cat(u8(255, 0), u16(1), s32(0x61), s32(0x1e));
const QEMU_AUDIO_ENABLE = cat(u8(255, 1), u16(0));
const QEMU_AUDIO_FORMAT = cat(u8(255, 1), u16(2), u8(3, 2), s32(44100));
const FENCE = cat(u8(248, 0, 0, 0), s32(0), u8(4), Buffer.from("abcd"));
const CONTINUOUS = cat(u8(150, 1), u16(0), u16(0), u16(1024), u16(768));
const XVP_REBOOT = u8(250, 0, 1, 3);
const SET_DESKTOP_SIZE = cat(u8(251, 0), u16(800), u16(600), u8(1, 0), s32(0), u16(0), u16(0), u16(800), u16(600), s32(0));

/** What the browser sends, and what must reach the guest. */
const SESSION: Array<[Buffer, Buffer | null]> = [
  [VERSION, VERSION],
  [u8(2), u8(2)], // VNC authentication
  [AUTH, AUTH],
  [u8(0), u8(1)], // ClientInit asking for exclusive access: forced to shared
  [SET_PIXEL_FORMAT, SET_PIXEL_FORMAT],
  [SET_ENCODINGS, SET_ENCODINGS_STRIPPED],
  [FB_UPDATE_REQUEST, FB_UPDATE_REQUEST],
  [KEY_EVENT, null],
  [POINTER_EVENT, null],
  [FB_UPDATE_INCREMENTAL, FB_UPDATE_INCREMENTAL],
  [CUT_TEXT("rm -rf / --no-preserve-root\n"), null],
  [QEMU_KEY, null],
  [EXTENDED_CUT_TEXT, null],
  [QEMU_AUDIO_ENABLE, QEMU_AUDIO_ENABLE],
  [QEMU_AUDIO_FORMAT, QEMU_AUDIO_FORMAT],
  [FENCE, FENCE],
  [CONTINUOUS, CONTINUOUS],
  [XVP_REBOOT, null],
  [SET_DESKTOP_SIZE, null],
  [CUT_TEXT(""), null],
  [KEY_EVENT, null],
  [FB_UPDATE_INCREMENTAL, FB_UPDATE_INCREMENTAL],
];
const INPUT = cat(...SESSION.map(([i]) => i));
const EXPECTED = cat(...SESSION.flatMap(([, o]) => (o ? [o] : [])));

function run(chunks: Buffer[]): { out: Buffer; filter: RfbClientFilter } {
  const filter = new RfbClientFilter();
  const out: Buffer[] = [];
  for (const c of chunks) out.push(...filter.push(c));
  return { out: Buffer.concat(out), filter };
}

function splitAt(buf: Buffer, positions: number[]): Buffer[] {
  const cuts = [0, ...positions, buf.length];
  return cuts.slice(1).map((end, i) => buf.subarray(cuts[i], end));
}

describe("RFB view-only filter", () => {
  test("a whole session in one chunk: pictures pass, input is dropped, exclusive becomes shared", () => {
    const { out, filter } = run([INPUT]);
    assert.deepEqual(out, EXPECTED);
    assert.equal(filter.currentPhase, "messages");
    assert.equal(filter.stats.dropped, SESSION.filter(([, o]) => o === null).length);
  });

  test("cut in two at every byte position, the output is the same", () => {
    for (let i = 1; i < INPUT.length; i++) {
      assert.deepEqual(run(splitAt(INPUT, [i])).out, EXPECTED, `split at ${i}`);
    }
  });

  test("cut in three at every pair of positions within the handshake and first messages", () => {
    const span = VERSION.length + 1 + AUTH.length + 1 + SET_PIXEL_FORMAT.length + SET_ENCODINGS.length + 12;
    for (let i = 1; i < span; i++) {
      for (let j = i + 1; j < span; j++) assert.deepEqual(run(splitAt(INPUT, [i, j])).out, EXPECTED, `split at ${i}, ${j}`);
    }
  });

  test("a byte at a time", () => {
    assert.deepEqual(run([...INPUT].map((b) => u8(b))).out, EXPECTED);
  });

  test("random chunk sizes, many times", () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let round = 0; round < 200; round++) {
      const positions: number[] = [];
      for (let p = 1 + Math.floor(random() * 20); p < INPUT.length; p += 1 + Math.floor(random() * 20)) positions.push(p);
      assert.deepEqual(run(splitAt(INPUT, positions)).out, EXPECTED, `round ${round}`);
    }
  });

  test("no security (type 1) skips the authentication response", () => {
    const input = cat(VERSION, u8(1), u8(1), FB_UPDATE_REQUEST, POINTER_EVENT, FB_UPDATE_REQUEST);
    assert.deepEqual(run([input]).out, cat(VERSION, u8(1), u8(1), FB_UPDATE_REQUEST, FB_UPDATE_REQUEST));
  });

  test("RFB 3.7 is followed like 3.8", () => {
    const v37 = Buffer.from("RFB 003.007\n", "latin1");
    assert.deepEqual(run([cat(v37, u8(2), AUTH, u8(1), KEY_EVENT, FB_UPDATE_REQUEST)]).out, cat(v37, u8(2), AUTH, u8(1), FB_UPDATE_REQUEST));
  });

  test("a long clipboard paste is dropped as it streams by, never held in memory", () => {
    const text = Buffer.alloc(5 * 1024 * 1024, 0x41);
    const filter = new RfbClientFilter();
    const out: Buffer[] = [];
    out.push(...filter.push(cat(VERSION, u8(2), AUTH, u8(1))));
    out.push(...filter.push(cat(u8(6, 0, 0, 0), s32(text.length))));
    for (let off = 0; off < text.length; off += 65_536) {
      out.push(...filter.push(text.subarray(off, off + 65_536)));
      assert.equal((filter as unknown as { available: number }).available, 0, "nothing of the paste is kept");
    }
    out.push(...filter.push(FB_UPDATE_REQUEST));
    assert.deepEqual(Buffer.concat(out), cat(VERSION, u8(2), AUTH, u8(1), FB_UPDATE_REQUEST));
  });

  const REFUSED: Array<[string, Buffer]> = [
    ["RFB 3.3 (the server picks security, which the filter cannot see)", Buffer.from("RFB 003.003\n", "latin1")],
    ["not RFB at all", Buffer.from("GET / HTTP/1.1\r\n", "latin1")],
    ["an unknown security type (VeNCrypt)", cat(VERSION, u8(19))],
    ["an unknown message type", cat(VERSION, u8(2), AUTH, u8(1), u8(7))],
    ["an unknown QEMU message", cat(VERSION, u8(2), AUTH, u8(1), u8(255, 9))],
    ["an unknown QEMU audio operation", cat(VERSION, u8(2), AUTH, u8(1), u8(255, 1), u16(7))],
  ];
  for (const [name, input] of REFUSED) {
    test(`refuses ${name}, whole and a byte at a time`, () => {
      assert.throws(() => run([input]), RfbFilterError);
      assert.throws(() => run([...input].map((b) => u8(b))), RfbFilterError);
    });
  }

  test("as a stream stage it forwards what it may and fails the pipe on garbage", async () => {
    const stage = rfbViewOnlyStream();
    const sink = new PassThrough();
    const got: Buffer[] = [];
    sink.on("data", (c: Buffer) => got.push(c));
    stage.pipe(sink);
    for (const b of splitAt(INPUT, [5, 40, 41, 100])) stage.write(b);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(Buffer.concat(got), EXPECTED);
    const failed = new Promise<Error>((resolve) => stage.once("error", resolve));
    stage.write(u8(99));
    assert.ok((await failed) instanceof RfbFilterError);
  });
});
