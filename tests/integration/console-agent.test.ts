/**
 * The agent's side of the guest console, against real QEMU and the demo guest: one-time
 * VNC passwords (with a real VNC handshake), the shared serial port, the kept and rotated
 * serial log, paste as keystrokes (us and de), and screen thumbnails.
 *
 * The demo guest runs root shells on its serial port (ttyS0) and its VGA console (tty1).
 * Keys typed through QMP reach tty1, so pasted commands write to /dev/ttyS0 to show on
 * the serial log.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { Duplex } from "node:stream";
import { after, before } from "node:test";
import { GuesthouseError } from "../../server/domain/errors";
import type { KeyboardLayout } from "../../server/domain/keymaps";
import type { TaskStatus } from "../../server/domain/types";
import { startTestAgent, waitFor, within, type TestAgent } from "../helpers/agent";
import { decodePng } from "../helpers/png";
import { collect, vncResponse } from "../helpers/rfb";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const BOOT_TIMEOUT_MS = 90_000;
/** Small, so that a few bursts of output rotate the log. */
const SERIAL_LOG_BYTES = 8192;
/** Short, so that the test sees a password expire without waiting 30 s. */
const VNC_PASSWORD_SECONDS = 4;

// ---------------------------------------------------------------------------------------------
// VNC (RFB 3.8) authentication, as a native viewer or noVNC does it

/** Runs the RFB 3.8 handshake with VNC authentication; on success also ClientInit/ServerInit. */
async function vncLogin(stream: Duplex, password: string): Promise<{ ok: true; width: number; height: number } | { ok: false; reason: string }> {
  const rx = collect(stream);
  await rx.until(12);
  assert.equal(rx.take(12).toString("latin1"), "RFB 003.008\n");
  stream.write("RFB 003.008\n");
  await rx.until(1);
  const count = rx.bytes()[0]!;
  assert.ok(count > 0, "the server offers security types");
  await rx.until(1 + count);
  const types = [...rx.take(1 + count).subarray(1)];
  assert.deepEqual(types, [2], "VNC authentication is the only way in (no 'None')");
  stream.write(Buffer.from([2]));
  await rx.until(16);
  stream.write(vncResponse(password, rx.take(16)));
  await rx.until(4);
  const result = rx.take(4).readUInt32BE(0);
  if (result !== 0) {
    await rx.until(4);
    const length = rx.bytes().readUInt32BE(0);
    await rx.until(4 + length);
    return { ok: false, reason: rx.take(4 + length).subarray(4).toString("utf8") };
  }
  stream.write(Buffer.from([1])); // ClientInit: shared
  await rx.until(24);
  await rx.until(24 + rx.bytes().readUInt32BE(20)); // ServerInit ends with the desktop's name
  const init = rx.bytes();
  return { ok: true, width: init.readUInt16BE(0), height: init.readUInt16BE(2) };
}

// ---------------------------------------------------------------------------------------------
// A German keymap for the guest's console, for the "de" paste

/** Linux key codes and what they type on a German keyboard, [plain, Shift, AltGr] ("" = keep). */
const GERMAN_KEYS: Record<number, [string, string, string]> = {
  3: ["2", '"', ""], // 2
  7: ["6", "&", ""], // 6
  8: ["7", "/", "{"], // 7
  9: ["8", "(", "["], // 8
  10: ["9", ")", "]"], // 9
  11: ["0", "=", "}"], // 0
  12: ["", "?", "\\"], // the ß key
  16: ["", "", "@"], // Q
  21: ["z", "Z", ""], // Y
  27: ["+", "*", "~"], // ]
  43: ["#", "'", ""], // backslash (ISO: left of Return)
  44: ["y", "Y", ""], // Z
  51: [",", ";", ""], // comma
  52: [".", ":", ""], // dot
  53: ["-", "_", ""], // slash
  86: ["<", ">", "|"], // the ISO key next to left Shift
};

/**
 * Loads a German keymap into the guest's kernel through its serial shell: dumps the
 * current (US) one with busybox `dumpkmap`, changes the keys above, and loads the
 * plain, Shift and AltGr tables back with `loadkmap`. Independent of server/domain/keymaps.
 */
async function loadGermanKeymap(serial: Duplex): Promise<void> {
  const rx = collect(serial);
  serial.write("echo KMAP-$((1+1))-BEGIN; dumpkmap | xxd -p; echo KMAP-$((2+2))-END\n");
  await rx.until("KMAP-4-END");
  const text = rx.text();
  const hex = text.slice(text.indexOf("KMAP-2-BEGIN") + "KMAP-2-BEGIN".length, text.indexOf("KMAP-4-END")).replace(/[^0-9a-f]/g, "");
  const dump = Buffer.from(hex, "hex");
  assert.equal(dump.toString("latin1", 0, 7), "bkeymap");
  const flags = dump.subarray(7, 7 + 256);
  const tables = new Map<number, Buffer>();
  let pos = 7 + 256;
  for (let t = 0; t < 256; t++) {
    if (flags[t] !== 1) continue;
    tables.set(t, Buffer.from(dump.subarray(pos, pos + 256)));
    pos += 256;
  }
  const [plain, shift, altgr] = [tables.get(0)!, tables.get(1)!, tables.get(2)!];
  // Learn how entries are written from known US keys: A is the letter "a", Shift+2 is "@".
  const letterBase = plain.readUInt16LE(30 * 2) - 0x61;
  const latinBase = shift.readUInt16LE(3 * 2) - 0x40;
  const entry = (ch: string) => (/[a-zA-Z]/.test(ch) ? letterBase : latinBase) + ch.charCodeAt(0);
  for (const [code, levels] of Object.entries(GERMAN_KEYS)) {
    [plain, shift, altgr].forEach((table, level) => {
      if (levels[level]) table.writeUInt16LE(entry(levels[level]!), Number(code) * 2);
    });
  }
  // Right Alt is AltGr in every table (Linux's default keymap has it so; make sure).
  const altGrKey = latinBase - (latinBase & 0x0f00) + 0x0701;
  for (const table of [plain, shift, altgr]) table.writeUInt16LE(altGrKey, 100 * 2);
  const outFlags = Buffer.alloc(256);
  outFlags[0] = outFlags[1] = outFlags[2] = 1;
  const kmap = Buffer.concat([Buffer.from("bkeymap", "latin1"), outFlags, plain, shift, altgr]);
  const b64 = kmap.toString("base64");
  let script = "rm -f /tmp/de.b64\n";
  for (let i = 0; i < b64.length; i += 300) script += `echo ${b64.slice(i, i + 300)} >> /tmp/de.b64\n`;
  script += "base64 -d /tmp/de.b64 > /tmp/de.kmap && loadkmap < /tmp/de.kmap && echo KMAP-$((3+3))-LOADED\n";
  serial.write(script);
  await rx.until("KMAP-6-LOADED");
}

// ---------------------------------------------------------------------------------------------

story("guest console, agent side, with real QEMU", (step) => {
  let agent: TestAgent;
  const spec = testSpec("guestcons0001", { name: "console-demo" });
  const stateDir = () => path.join(agent.dataDir, "guests", spec.id);
  const logFile = (name: string) => path.join(stateDir(), name);
  /**
   * QEMU writes a line to the serial socket first and to the log right after (char.c:
   * chr_write, then qemu_chr_write_log), so a line just seen live may not be logged yet
   * by the time the test asks; on a busy host QEMU's thread can be off the CPU between
   * the two. Awaited, bounded.
   */
  const logHolds = (marker: string, what: string) =>
    waitFor(`${marker} in the serial log (${what})`, async () => (await agent.client.serialLog(spec.id)).includes(marker), 5_000);
  const taskDone = (id: string) =>
    waitFor(`task ${id} to end`, async () => {
      const task = await agent.client.task(id);
      return task.state === "running" ? null : task;
    }, 120_000);

  before(async () => {
    agent = await startTestAgent({
      GUESTHOUSE_SERIAL_LOG_BYTES: String(SERIAL_LOG_BYTES),
      GUESTHOUSE_VNC_PASSWORD_SECONDS: String(VNC_PASSWORD_SECONDS),
    });
    await agent.client.start(spec);
    await waitFor("the demo guest to boot", async () => (await agent.client.serialLog(spec.id)).includes("GUESTHOUSE-DEMO-READY"), BOOT_TIMEOUT_MS);
  });
  after(async () => {
    await agent?.cleanup();
  });

  step("the display asks for a password; the one the agent hands out opens it, a wrong one does not", async () => {
    const first = await agent.client.openVnc(spec.id);
    assert.match(first.password, /^[A-Za-z0-9]{8}$/);
    const login = await vncLogin(first.stream, first.password);
    first.stream.destroy();
    assert.equal(login.ok, true, `login failed: ${JSON.stringify(login)}`);
    if (login.ok) assert.ok(login.width >= 320 && login.height >= 200, `a real screen size: ${login.width}x${login.height}`);

    const second = await agent.client.openVnc(spec.id);
    const wrong = await vncLogin(second.stream, second.password === "xxxxxxxx" ? "yyyyyyyy" : "xxxxxxxx");
    second.stream.destroy();
    assert.equal(wrong.ok, false);
  });

  step("viewers opening together share a password; later ones get a new one; an old one expires", async () => {
    const [a, b] = await Promise.all([agent.client.openVnc(spec.id), agent.client.openVnc(spec.id)]);
    assert.equal(a.password, b.password, "two viewers opening at once do not knock each other out");
    const loginB = await vncLogin(b.stream, b.password);
    const loginA = await vncLogin(a.stream, a.password);
    assert.ok(loginA.ok && loginB.ok);

    // Past the sharing part of its life (lifetime 4 s, shared for the first 2 s): a new password.
    await new Promise((r) => setTimeout(r, 2500));
    const c = await agent.client.openVnc(spec.id);
    assert.notEqual(c.password, a.password);
    const withOld = await vncLogin(c.stream, a.password);
    assert.equal(withOld.ok, false, "the replaced password no longer opens the display");
    // Sessions already in keep running: A's stream still answers (a FramebufferUpdateRequest).
    const rxA = collect(a.stream);
    a.stream.write(Buffer.from([3, 0, 0, 0, 0, 0, 0, 16, 0, 16]));
    await rxA.until(4);
    assert.equal(rxA.bytes()[0], 0, "a FramebufferUpdate");
    for (const s of [a.stream, b.stream, c.stream]) s.destroy();

    // A viewer that waits past the lifetime before logging in is refused: the password expired.
    const late = await agent.client.openVnc(spec.id);
    await new Promise((r) => setTimeout(r, (VNC_PASSWORD_SECONDS + 1.5) * 1000));
    const expired = await vncLogin(late.stream, late.password);
    late.stream.destroy();
    assert.equal(expired.ok, false);
    if (!expired.ok) assert.match(expired.reason, /expired|failed/i);
  });

  step("a screenshot is a PNG of the asked width showing the guest's screen", async () => {
    const png = await agent.client.screenshot(spec.id, 200);
    const image = decodePng(png);
    assert.equal(image.width, 200);
    assert.ok(image.height >= 100 && image.height <= 200, `height ${image.height}`);
    const first = image.data.subarray(0, 3);
    let differing = 0;
    for (let i = 0; i < image.data.length; i += 3) if (!image.data.subarray(i, i + 3).equals(first)) differing++;
    assert.ok(differing > 50, `the screen shows something (${differing} pixels differ from the first)`);

    const again = await agent.client.screenshot(spec.id, 200);
    assert.ok(again.equals(png), "within 2 s, the same picture (one screendump for many viewers)");
    assert.equal(decodePng(await agent.client.screenshot(spec.id)).width, 320, "320 pixels wide by default");
    await assert.rejects(agent.client.screenshot(spec.id, 5000), (err: GuesthouseError) => err.code === "invalid-input" && /640/.test(err.message));
    // QEMU writes every picture into the one file it got a descriptor of, and nothing else.
    assert.deepEqual(fs.readdirSync(stateDir()).filter((f) => f.endsWith(".ppm")), ["screen.ppm"], "one screen file, no other screendump");
  });

  step("two serial viewers at once both see what one of them typed", async () => {
    const one = await agent.client.openSerial(spec.id);
    const two = await agent.client.openSerial(spec.id);
    const rxOne = collect(one);
    const rxTwo = collect(two);
    one.write("echo SERIAL-$((6*7))\n");
    await rxOne.until("SERIAL-42");
    await rxTwo.until("SERIAL-42");
    // Either viewer can type; the other sees it.
    two.write("echo SERIAL-$((7*7))\n");
    await rxOne.until("SERIAL-49");
    one.destroy();
    two.destroy();

    // After the last viewer left, a new viewer has the port again.
    const three = await agent.client.openSerial(spec.id);
    const rxThree = collect(three);
    three.write("echo SERIAL-$((8*8))\n");
    await rxThree.until("SERIAL-64");
    three.destroy();
  });

  step("paste types a line into the guest's console (us)", async () => {
    const task = await agent.client.typeText(spec.id, "echo PASTE-OK-$((2*21)) > /dev/ttyS0\n", "us");
    assert.equal(task.kind, "paste");
    assert.equal(task.state, "running");
    assert.deepEqual(task.targets, [`guest:${spec.id}`]);
    assert.match(task.title, /console-demo/);
    const done = await taskDone(task.id);
    assert.equal(done.state, "succeeded", done.message ?? "");
    assert.equal(done.progress, 1);
    await waitFor("PASTE-OK-42 on the serial log", async () => (await agent.client.serialLog(spec.id)).includes("PASTE-OK-42"), 30_000);
  });

  step("paste refuses what it cannot type, too much text, an unknown layout, and a second paste meanwhile", async () => {
    await assert.rejects(agent.client.typeText(spec.id, "naïve ☃", "us"), (err: GuesthouseError) => {
      assert.equal(err.code, "invalid-input");
      assert.match(err.message, /☃/);
      return true;
    });
    await assert.rejects(agent.client.typeText(spec.id, "x".repeat(65_537), "us"), (err: GuesthouseError) => err.code === "invalid-input" && /65,536/.test(err.message));
    // A layout the client's type refuses, sent anyway: the agent refuses it too.
    await assert.rejects(agent.client.typeText(spec.id, "x", "klingon" as KeyboardLayout), (err: GuesthouseError) => err.code === "invalid-input");

    const long = await agent.client.typeText(spec.id, `#${"a".repeat(400)}`, "us");
    await assert.rejects(agent.client.typeText(spec.id, "echo\n", "us"), (err: GuesthouseError) => err.code === "conflict" && /busy/.test(err.message));
    await agent.client.cancelTask(long.id);
    await taskDone(long.id);
    await taskDone((await agent.client.typeText(spec.id, "\n", "us")).id); // end the comment line
  });

  step("a long paste can be cancelled: it stops typing", async () => {
    const task = await agent.client.typeText(spec.id, `#${"b".repeat(3000)}`, "us");
    await waitFor("some progress", async () => ((await agent.client.task(task.id)).progress ?? 0) > 0.01, 20_000);
    const cancelled = await agent.client.cancelTask(task.id);
    assert.equal(cancelled.id, task.id);
    const done: TaskStatus = await taskDone(task.id);
    assert.equal(done.state, "cancelled");
    assert.ok((done.progress ?? 0) < 0.5, `stopped early (progress ${done.progress})`);
    assert.match(done.message ?? "", /Stopped after \d+ of 3001 key presses; what was typed stays typed/);
    const typed = Math.round((done.progress ?? 0) * 3001);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(Math.abs(Math.round(((await agent.client.task(task.id)).progress ?? 0) * 3001) - typed) <= 1, "nothing more is typed after the cancel");
    await taskDone((await agent.client.typeText(spec.id, "\n", "us")).id);
  });

  step("paste with the de layout types characters that differ from us (y/z, @, -, AltGr and Shift symbols)", async () => {
    const serial = await agent.client.openSerial(spec.id);
    try {
      await loadGermanKeymap(serial);
    } finally {
      serial.destroy();
    }
    const payload = `DE:zy/ZY@-_()=?<>|{[]}\\#*+~;:,.&"`;
    const task = await agent.client.typeText(spec.id, `echo '${payload}' > /dev/ttyS0\n`, "de");
    const done = await taskDone(task.id);
    assert.equal(done.state, "succeeded", done.message ?? "");
    await waitFor(`${payload} on the serial log`, async () => (await agent.client.serialLog(spec.id)).includes(payload), 30_000);
  });

  step("the serial log is rotated at its limit: both parts stay bounded, the newest output is kept", async () => {
    const serial = await agent.client.openSerial(spec.id);
    const rx = collect(serial);
    const line = "-".repeat(100);
    // About 3 × the limit in one burst, then wait for the rotation (every 2 s).
    serial.write(`i=0; while [ $i -lt 250 ]; do echo ROT1-$i${line}; i=$((i+1)); done; echo ROT1-$((5*5))-DONE\n`);
    await rx.until("ROT1-25-DONE", 60_000);
    await waitFor("serial.log.1", () => fs.existsSync(logFile("serial.log.1")), 10_000);
    await waitFor("the rotation", () => fs.statSync(logFile("serial.log")).size < SERIAL_LOG_BYTES, 10_000);
    const burst = 250 * 110;
    assert.ok(fs.statSync(logFile("serial.log.1")).size <= burst + 2 * SERIAL_LOG_BYTES, "the older part is one rotation's worth");
    await logHolds("ROT1-25-DONE", "the newest output is there");

    // A second burst replaces the older part instead of piling up.
    serial.write(`i=0; while [ $i -lt 250 ]; do echo ROT2-$i${line}; i=$((i+1)); done; echo ROT2-$((6*6))-DONE\n`);
    await rx.until("ROT2-36-DONE", 60_000);
    await waitFor("the second rotation", () => fs.statSync(logFile("serial.log")).size < SERIAL_LOG_BYTES && !fs.readFileSync(logFile("serial.log.1"), "latin1").includes("ROT1-100"), 10_000);
    serial.destroy();
    const sizes = ["serial.log", "serial.log.1"].map((f) => fs.statSync(logFile(f)).size);
    assert.ok(sizes[0]! < SERIAL_LOG_BYTES && sizes[1]! <= burst + 2 * SERIAL_LOG_BYTES, `sizes ${sizes}`);
    await logHolds("ROT2-36-DONE", "the newest output is there");
    const text = await agent.client.serialLog(spec.id);
    assert.ok(!text.includes("ROT1-100") && !text.includes("PASTE-OK-42"), "older output is gone: the log does not pile up");
    assert.equal(text, fs.readFileSync(logFile("serial.log.1"), "utf8") + fs.readFileSync(logFile("serial.log"), "utf8"), "the older part comes first");
  });

  step("after force off: the serial log stays readable; consoles, screenshots and pastes are refused", async () => {
    const serial = await agent.client.openSerial(spec.id);
    const rx = collect(serial);
    serial.write("echo BEFORE-OFF-$((9*9))\n");
    await rx.until("BEFORE-OFF-81");
    await logHolds("BEFORE-OFF-81", "the line is logged before the guest goes");
    await agent.client.forceOff(spec.id);
    await within("the viewer's stream to end with the guest", rx.closed, 15_000);

    const log = await agent.client.serialLog(spec.id);
    assert.ok(log.includes("BEFORE-OFF-81"), "the log survives the guest stopping");
    assert.ok(fs.existsSync(logFile("serial.log")));
    const conflict = (err: GuesthouseError) => err.code === "conflict";
    await assert.rejects(agent.client.typeText(spec.id, "echo\n", "us"), conflict);
    await assert.rejects(agent.client.screenshot(spec.id), conflict);
    await assert.rejects(agent.client.openSerial(spec.id), conflict);
    await assert.rejects(agent.client.openVnc(spec.id), conflict);

    // The next start appends to it (QEMU opens it with logappend=on).
    const readyBefore = log.split("GUESTHOUSE-DEMO-READY").length;
    await agent.client.start(spec);
    await waitFor("the second boot", async () => (await agent.client.serialLog(spec.id)).split("GUESTHOUSE-DEMO-READY").length > readyBefore, BOOT_TIMEOUT_MS);
    await agent.client.forceOff(spec.id);
  });

  step("a paste fails clearly when the guest stops meanwhile", async () => {
    await agent.client.start(spec);
    await waitFor("the guest's QMP", async () => (await agent.client.guest(spec.id)).state === "running", 30_000);
    const task = await agent.client.typeText(spec.id, `#${"c".repeat(2000)}`, "us");
    await waitFor("some of it typed", async () => ((await agent.client.task(task.id)).progress ?? 0) > 0, 20_000, 20);
    await agent.client.forceOff(spec.id);
    const done = await taskDone(task.id);
    assert.equal(done.state, "failed");
    assert.match(done.message ?? "", /(stopped|closed).*\d+ of 2001 key presses|after \d+ of 2001 key presses/);
  });

  step("serial logs: none for a guest that never ran; gone once the guest is forgotten", async () => {
    await assert.rejects(agent.client.serialLog("guestnever001"), (err: GuesthouseError) => err.code === "not-found" && /has not run/.test(err.message));
    await agent.client.forget(spec.id);
    await assert.rejects(agent.client.serialLog(spec.id), (err: GuesthouseError) => err.code === "not-found");
  });
});
