/**
 * The keyboard layout tables, checked against the layouts themselves: Debian's
 * xkb files (package xkb-data, installed by `scripts/setup.sh --test`). For every
 * layout, every character the table can type is "typed" on a keymap built from
 * /usr/share/X11/xkb the way Linux builds it (symbols "pc+<layout>", keycodes
 * "evdev"), and what xkb produces must be that character.
 *
 * The test's own knowledge is limited to public standards, each cross-checked
 * against a file when it is there: QKeyCode -> Linux key code (QEMU's
 * keycodemapdb; checked against linux/input-event-codes.h), X11 keysym names ->
 * Unicode (checked against X11/keysymdef.h), "dead key, Space" -> character (checked
 * against X11's Compose table), and QKeyCode names (checked against the running
 * QEMU's QMP schema).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { GuesthouseError } from "../../server/domain/errors";
import {
  KEYBOARD_LAYOUTS,
  TYPING_KEYS,
  keystrokesToQmpEvents,
  qmpEventsFor,
  textToKeystrokes,
  typeableCharacters,
  untypeableCharacters,
  type KeyboardLayout,
  type Keystroke,
  type QKeyCode,
} from "../../server/domain/keymaps";

const XKB = "/usr/share/X11/xkb";

// ---------------------------------------------------------------------------
// Standards the test relies on

/** QKeyCode -> Linux input key code (QEMU's keycodemapdb: qcode "less" = KEY_102ND, …). */
const LINUX_KEY_CODES: Record<QKeyCode, [code: number, name: string]> = {
  grave_accent: [41, "KEY_GRAVE"],
  1: [2, "KEY_1"], 2: [3, "KEY_2"], 3: [4, "KEY_3"], 4: [5, "KEY_4"], 5: [6, "KEY_5"],
  6: [7, "KEY_6"], 7: [8, "KEY_7"], 8: [9, "KEY_8"], 9: [10, "KEY_9"], 0: [11, "KEY_0"],
  minus: [12, "KEY_MINUS"], equal: [13, "KEY_EQUAL"], tab: [15, "KEY_TAB"],
  q: [16, "KEY_Q"], w: [17, "KEY_W"], e: [18, "KEY_E"], r: [19, "KEY_R"], t: [20, "KEY_T"],
  y: [21, "KEY_Y"], u: [22, "KEY_U"], i: [23, "KEY_I"], o: [24, "KEY_O"], p: [25, "KEY_P"],
  bracket_left: [26, "KEY_LEFTBRACE"], bracket_right: [27, "KEY_RIGHTBRACE"], ret: [28, "KEY_ENTER"],
  a: [30, "KEY_A"], s: [31, "KEY_S"], d: [32, "KEY_D"], f: [33, "KEY_F"], g: [34, "KEY_G"],
  h: [35, "KEY_H"], j: [36, "KEY_J"], k: [37, "KEY_K"], l: [38, "KEY_L"],
  semicolon: [39, "KEY_SEMICOLON"], apostrophe: [40, "KEY_APOSTROPHE"],
  shift: [42, "KEY_LEFTSHIFT"], backslash: [43, "KEY_BACKSLASH"],
  z: [44, "KEY_Z"], x: [45, "KEY_X"], c: [46, "KEY_C"], v: [47, "KEY_V"], b: [48, "KEY_B"],
  n: [49, "KEY_N"], m: [50, "KEY_M"], comma: [51, "KEY_COMMA"], dot: [52, "KEY_DOT"], slash: [53, "KEY_SLASH"],
  spc: [57, "KEY_SPACE"], less: [86, "KEY_102ND"], alt_r: [100, "KEY_RIGHTALT"],
};

/** X11 keysym names whose keysym value is their Unicode code point: ASCII 0x20–0x7e and Latin-1 0xa0–0xff. */
const X11_KEYSYM_NAMES: readonly string[] = [
  ..."space exclam quotedbl numbersign dollar percent ampersand apostrophe parenleft parenright asterisk plus comma minus period slash".split(" "),
  ..."0123456789",
  ..."colon semicolon less equal greater question at".split(" "),
  ..."ABCDEFGHIJKLMNOPQRSTUVWXYZ",
  ..."bracketleft backslash bracketright asciicircum underscore grave".split(" "),
  ..."abcdefghijklmnopqrstuvwxyz",
  ..."braceleft bar braceright asciitilde".split(" "),
  ...(
    "nobreakspace exclamdown cent sterling currency yen brokenbar section diaeresis copyright ordfeminine " +
    "guillemotleft notsign hyphen registered macron degree plusminus twosuperior threesuperior acute mu " +
    "paragraph periodcentered cedilla onesuperior masculine guillemotright onequarter onehalf threequarters " +
    "questiondown Agrave Aacute Acircumflex Atilde Adiaeresis Aring AE Ccedilla Egrave Eacute Ecircumflex " +
    "Ediaeresis Igrave Iacute Icircumflex Idiaeresis ETH Ntilde Ograve Oacute Ocircumflex Otilde Odiaeresis " +
    "multiply Oslash Ugrave Uacute Ucircumflex Udiaeresis Yacute THORN ssharp agrave aacute acircumflex " +
    "atilde adiaeresis aring ae ccedilla egrave eacute ecircumflex ediaeresis igrave iacute icircumflex " +
    "idiaeresis eth ntilde ograve oacute ocircumflex otilde odiaeresis division oslash ugrave uacute " +
    "ucircumflex udiaeresis yacute thorn ydiaeresis"
  ).split(" "),
];
const KEYSYM_CHARS = new Map<string, string>([
  ...X11_KEYSYM_NAMES.map((name, i): [string, string] => [name, String.fromCodePoint(i < 95 ? 0x20 + i : 0xa0 + i - 95)]),
  ["EuroSign", "€"],
  ["Return", "\n"],
  ["Tab", "\t"],
]);

/** What a keysym types, or undefined for one that types nothing (modifiers, dead keys, arrows…). */
function keysymChar(keysym: string): string | undefined {
  const known = KEYSYM_CHARS.get(keysym);
  if (known !== undefined) return known;
  const unicode = /^U([0-9A-Fa-f]{4,6})$/.exec(keysym) ?? /^0x0?1([0-9A-Fa-f]{6})$/.exec(keysym);
  return unicode ? String.fromCodePoint(parseInt(unicode[1]!, 16)) : undefined;
}

/** "Dead key, then Space" (X11 Compose; Windows does the same for these three). */
const DEAD_THEN_SPACE: Record<string, string> = { dead_circumflex: "^", dead_grave: "`", dead_tilde: "~" };

// ---------------------------------------------------------------------------
// A focused xkb reader: symbols (with include and per-level merging) and keycodes

/** Key name -> keysym per level (index 0 = level 1 = plain, 1 = Shift, 2 = AltGr, 3 = Shift+AltGr). */
type Keymap = Map<string, (string | undefined)[]>;

function readXkb(path: string): string {
  assert.ok(existsSync(path), `${path} is missing: install Debian's xkb-data (scripts/setup.sh --test does)`);
  return readFileSync(path, "utf8").replace(/\/\/.*$/gm, "");
}

const KEY_ALIASES = new Map<string, string>();
const EVDEV_NAMES = new Map<number, string>(); // xkb key code -> key name
{
  const text = readXkb(`${XKB}/keycodes/evdev`);
  for (const m of text.matchAll(/<(\w+)>\s*=\s*(\d+)\s*;/g)) {
    const code = Number(m[2]);
    if (!EVDEV_NAMES.has(code)) EVDEV_NAMES.set(code, m[1]!);
  }
  for (const m of text.matchAll(/alias\s*<(\w+)>\s*=\s*<(\w+)>\s*;/g)) KEY_ALIASES.set(m[1]!, m[2]!);
}

/** The xkb key name of a QKeyCode: xkb's evdev key codes are Linux key codes + 8. */
function xkbKeyName(key: QKeyCode): string {
  const name = EVDEV_NAMES.get(LINUX_KEY_CODES[key][0] + 8);
  assert.ok(name, `no xkb key for ${key}`);
  return name;
}

/** The xkb_symbols blocks of one symbols file, and which one is its default. */
function symbolsFile(file: string): { blocks: Map<string, string>; defaultName: string } {
  const text = readXkb(`${XKB}/symbols/${file}`);
  const blocks = new Map<string, string>();
  let defaultName: string | undefined;
  for (const header of text.matchAll(/((?:\b[a-z_]+\s+)*)xkb_symbols\s+"([^"]+)"\s*\{/g)) {
    let depth = 1;
    let i = header.index + header[0].length;
    const start = i;
    for (; depth > 0 && i < text.length; i++) depth += text[i] === "{" ? 1 : text[i] === "}" ? -1 : 0;
    blocks.set(header[2]!, text.slice(start, i - 1));
    if (/\bdefault\b/.test(header[1]!)) defaultName ??= header[2]!;
  }
  assert.ok(blocks.size > 0, `no xkb_symbols in ${file}`);
  return { blocks, defaultName: defaultName ?? blocks.keys().next().value! };
}

/** Merges one key into the keymap level by level, the way xkbcommon does. */
function mergeKey(keymap: Keymap, name: string, levels: (string | undefined)[], override: boolean): void {
  const into = keymap.get(name) ?? [];
  levels.forEach((sym, i) => {
    if (sym !== undefined && (override || into[i] === undefined)) into[i] = sym;
  });
  keymap.set(name, into);
}

/** Applies an include string such as "pc+de", "latin(type4)" or "a|b" to the keymap. */
function applyInclude(keymap: Keymap, spec: string, override: boolean, depth = 0): void {
  assert.ok(depth < 20, `include loop at ${spec}`);
  const parts = spec.split(/(?=[+|])/);
  parts.forEach((part, i) => {
    const mode = i === 0 ? override : part.startsWith("+");
    const m = /^[+|]?([\w-]+)(?:\(([^)]+)\))?$/.exec(part.trim());
    assert.ok(m, `cannot read include "${spec}"`);
    const file = symbolsFile(m[1]!);
    const body = file.blocks.get(m[2] ?? file.defaultName);
    assert.ok(body !== undefined, `no xkb_symbols "${m[2]}" in ${m[1]}`);
    applyBody(keymap, body, mode, depth + 1);
  });
}

function applyBody(keymap: Keymap, body: string, override: boolean, depth: number): void {
  const statement = /\b(include|override|augment|replace)\s+"([^"]+)"|\b(?:(override|augment|replace)\s+)?key\s*<(\w+)>\s*\{([^}]*)\}/g;
  for (const m of body.matchAll(statement)) {
    if (m[1]) {
      applyInclude(keymap, m[2]!, m[1] === "augment" ? false : m[1] === "include" ? override : true, depth);
      continue;
    }
    const keyOverride = m[3] ? m[3] !== "augment" : override;
    const content = m[5]!;
    const list =
      /symbols\[\s*Group1\s*\]\s*=\s*\[([^\]]*)\]/.exec(content)?.[1] ??
      (/\w+\[\s*\w+\s*\]\s*=/.test(content) ? undefined : /\[([^\]]*)\]/.exec(content)?.[1]);
    if (list === undefined) continue; // a key with only actions, types or other groups
    const levels = list.split(",").map((s) => s.trim()).map((s) => (s === "" || s === "NoSymbol" ? undefined : s));
    const name = KEY_ALIASES.get(m[4]!) ?? m[4]!;
    mergeKey(keymap, name, levels, keyOverride);
  }
}

/** The keymap Linux builds for a layout on a pc105 keyboard (rules/evdev: symbols "pc+<layout>"). */
function xkbKeymap(layout: KeyboardLayout): Keymap {
  const keymap: Keymap = new Map();
  applyInclude(keymap, `pc+${layout}`, true);
  return keymap;
}
const KEYMAPS = new Map(KEYBOARD_LAYOUTS.map((layout) => [layout, xkbKeymap(layout)]));

/**
 * Presses the keystrokes on the xkb keymap and returns the text they produce.
 * Strict: a press on a level the key does not have, or a dead key not followed
 * by Space, is an error.
 */
function typeOnXkb(layout: KeyboardLayout, strokes: readonly Keystroke[]): string {
  const keymap = KEYMAPS.get(layout)!;
  let text = "";
  let pendingDead: string | undefined;
  for (const stroke of strokes) {
    if (stroke.altgr) {
      const ralt = keymap.get(xkbKeyName("alt_r"))?.[0];
      if (ralt !== "ISO_Level3_Shift") throw new Error(`${layout}: right Alt is ${ralt}, not AltGr`);
    }
    const level = (stroke.shift ? 1 : 0) + (stroke.altgr ? 2 : 0);
    const name = xkbKeyName(stroke.key);
    const keysym = keymap.get(name)?.[level];
    if (keysym === undefined) throw new Error(`${layout}: <${name}> has nothing on level ${level + 1}`);
    if (pendingDead !== undefined) {
      if (keysym !== "space") throw new Error(`${layout}: ${pendingDead} is followed by ${keysym}, not space`);
      text += DEAD_THEN_SPACE[pendingDead];
      pendingDead = undefined;
    } else if (keysym.startsWith("dead_")) {
      if (!(keysym in DEAD_THEN_SPACE)) throw new Error(`${layout}: <${name}> level ${level + 1} is ${keysym}`);
      pendingDead = keysym;
    } else {
      const char = keysymChar(keysym);
      if (char === undefined) throw new Error(`${layout}: <${name}> level ${level + 1} is ${keysym}, which types nothing`);
      text += char;
    }
  }
  if (pendingDead !== undefined) throw new Error(`${layout}: the text ends with ${pendingDead}`);
  return text;
}

function strokeText(s: Keystroke): string {
  return [s.shift && "Shift", s.altgr && "AltGr", s.key].filter(Boolean).join("+");
}

const PRINTABLE_ASCII = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join("");

/** The layout's own letters and signs, each on a key of its own (hand-picked from the keycaps). */
const COMMON_CHARACTERS: Record<KeyboardLayout, string> = {
  us: "",
  gb: "£€¬",
  de: "äöüÄÖÜß§°²³€µ",
  fr: "éèçàù²£¤µ§°€",
  es: "ñÑçÇºª·¡¿€¬",
  it: "éèàòùìç°§£€",
  ch: "äöüéèàç§°£€¬¢",
};

// ---------------------------------------------------------------------------

describe("the cross-checked standards", () => {
  test("QEMU knows every QKeyCode name the tables send", () => {
    const out = execFileSync(
      "qemu-system-x86_64",
      ["-machine", "none", "-nodefaults", "-display", "none", "-qmp", "stdio"],
      {
        input: ['{"execute":"qmp_capabilities"}', '{"execute":"query-qmp-schema"}', '{"execute":"quit"}', ""].join("\n"),
        encoding: "utf8",
        timeout: 30_000,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    const schema = out
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { return?: unknown })
      .find((reply) => Array.isArray(reply.return))?.return as { "meta-type": string; values?: string[] }[];
    assert.ok(schema, "QEMU returned no schema");
    const qkeycode = schema.find((e) => e["meta-type"] === "enum" && e.values?.includes("bracket_left") && e.values.includes("alt_r"));
    assert.ok(qkeycode?.values, "no QKeyCode enum in QEMU's schema");
    for (const key of [...TYPING_KEYS, "shift", "alt_r"]) assert.ok(qkeycode.values.includes(key), `QEMU has no QKeyCode "${key}"`);
  });

  test("the QKeyCode -> Linux key code table agrees with linux/input-event-codes.h", (t) => {
    const path = "/usr/include/linux/input-event-codes.h";
    if (!existsSync(path)) return t.skip(`${path} is not installed`);
    const defines = new Map([...readFileSync(path, "utf8").matchAll(/#define\s+(KEY_\w+)\s+(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    for (const [key, [code, name]] of Object.entries(LINUX_KEY_CODES)) assert.equal(defines.get(name), code, `${key}: ${name}`);
  });

  test("the keysym names agree with X11/keysymdef.h", (t) => {
    const path = "/usr/include/X11/keysymdef.h";
    if (!existsSync(path)) return t.skip(`${path} is not installed`);
    const defines = new Map(
      [...readFileSync(path, "utf8").matchAll(/#define\s+XK_(\w+)\s+0x([0-9a-f]+)/g)].map((m) => [m[1]!, parseInt(m[2]!, 16)]),
    );
    for (const name of [...X11_KEYSYM_NAMES, "EuroSign"]) {
      assert.equal(defines.get(name), KEYSYM_CHARS.get(name)!.codePointAt(0), `keysym ${name}`);
    }
    assert.equal(defines.get("Return"), 0xff0d);
    assert.equal(defines.get("Tab"), 0xff09);
  });

  test('"dead key, then Space" agrees with X11\'s Compose table', (t) => {
    const path = "/usr/share/X11/locale/en_US.UTF-8/Compose";
    if (!existsSync(path)) return t.skip(`${path} is not installed`);
    const text = readFileSync(path, "utf8");
    for (const [deadKey, char] of Object.entries(DEAD_THEN_SPACE)) {
      const m = new RegExp(`^<${deadKey}>\\s+<space>\\s*:\\s*"([^"]+)"`, "m").exec(text);
      assert.equal(m?.[1], char, deadKey);
    }
  });

  test("the xkb reader reads what it should (spot checks against the files' text)", () => {
    // de includes latin(type4); ch's short key lines keep latin's higher levels
    assert.deepEqual(KEYMAPS.get("de")!.get("AE07"), ["7", "slash", "braceleft", "seveneighths"]);
    assert.deepEqual(KEYMAPS.get("ch")!.get("AE03"), ["3", "asterisk", "numbersign", "sterling"]);
    assert.deepEqual(KEYMAPS.get("de")!.get("AE11")?.slice(0, 4), ["ssharp", "question", "backslash", "questiondown"]);
    assert.equal(KEYMAPS.get("fr")!.get("LSGT")?.[0], "less", "fr gets <LSGT> from pc(pc105)");
    assert.equal(KEYMAPS.get("us")!.get("RALT")?.[0], "Alt_R", "us has no AltGr");
    assert.equal(KEYMAPS.get("de")!.get("RALT")?.[0], "ISO_Level3_Shift");
    assert.equal(xkbKeyName("less"), "LSGT");
    assert.equal(xkbKeyName("grave_accent"), "TLDE");
    assert.equal(xkbKeyName("backslash"), "BKSL");
    assert.equal(xkbKeyName("alt_r"), "RALT");
    assert.equal(xkbKeyName("shift"), "LFSH");
  });
});

for (const layout of KEYBOARD_LAYOUTS) {
  describe(`layout ${layout}`, () => {
    test("every printable ASCII character, newline and tab can be typed", () => {
      assert.deepEqual(untypeableCharacters(PRINTABLE_ASCII + "\n\t", layout), []);
    });

    test("its own common characters can be typed", () => {
      assert.deepEqual(untypeableCharacters(COMMON_CHARACTERS[layout], layout), []);
    });

    test("every character in the table is what xkb types with those keys", () => {
      const wrong: string[] = [];
      for (const [char, strokes] of typeableCharacters(layout)) {
        let typed: string;
        try {
          typed = typeOnXkb(layout, strokes);
        } catch (err) {
          typed = `(${(err as Error).message})`;
        }
        if (typed !== char) wrong.push(`${JSON.stringify(char)}: ${strokes.map(strokeText).join(", ")} types ${JSON.stringify(typed)}`);
      }
      assert.deepEqual(wrong, []);
    });

    test("all of printable ASCII typed as one text comes out unchanged", () => {
      const text = `${PRINTABLE_ASCII}\n\t${COMMON_CHARACTERS[layout]}\n`;
      assert.equal(typeOnXkb(layout, textToKeystrokes(text, layout)), text);
    });
  });
}

describe("textToKeystrokes", () => {
  test("newline is Return and tab is Tab; \\r\\n and a lone \\r are one Return", () => {
    const ret: Keystroke = { key: "ret", shift: false, altgr: false };
    const tab: Keystroke = { key: "tab", shift: false, altgr: false };
    assert.deepEqual(textToKeystrokes("\n", "us"), [ret]);
    assert.deepEqual(textToKeystrokes("\t", "de"), [tab]);
    assert.deepEqual(textToKeystrokes("a\r\nb\rc", "us").map((s) => s.key), ["a", "ret", "b", "ret", "c"]);
  });

  test("letters move with the layout, modifiers come from the table", () => {
    assert.deepEqual(textToKeystrokes("yZ", "de"), [
      { key: "z", shift: false, altgr: false },
      { key: "y", shift: true, altgr: false },
    ]);
    assert.deepEqual(textToKeystrokes("a1", "fr"), [
      { key: "q", shift: false, altgr: false },
      { key: "1", shift: true, altgr: false },
    ]);
    assert.deepEqual(textToKeystrokes("{", "it"), [{ key: "bracket_left", shift: true, altgr: true }]);
  });

  test("a character on a dead key is the dead key, then Space", () => {
    assert.deepEqual(textToKeystrokes("^", "de"), [
      { key: "grave_accent", shift: false, altgr: false },
      { key: "spc", shift: false, altgr: false },
    ]);
    assert.deepEqual(textToKeystrokes("~", "ch"), [
      { key: "equal", shift: false, altgr: true },
      { key: "spc", shift: false, altgr: false },
    ]);
    assert.deepEqual(textToKeystrokes("^", "fr"), [{ key: "9", shift: false, altgr: true }], "French ^ needs no dead key");
  });

  test("decomposed accents are composed first", () => {
    assert.deepEqual(textToKeystrokes("e\u0301", "fr"), textToKeystrokes("é", "fr"));
  });

  test("untypeable characters give a clear error naming each of them once", () => {
    assert.throws(
      () => textToKeystrokes("Grüße, 5 € and ü again", "us"),
      (err: unknown) => {
        assert.ok(err instanceof GuesthouseError);
        assert.equal(err.code, "invalid-input");
        assert.match(err.message, /English \(US\) keyboard layout has no key for "ü" \(U\+00FC\), "ß" \(U\+00DF\), "€" \(U\+20AC\)\./);
        assert.equal(err.message.match(/U\+00FC/g)?.length, 1);
        return true;
      },
    );
    assert.throws(() => textToKeystrokes("señor", "de"), /German keyboard layout has no key for "ñ" \(U\+00F1\)/);
    assert.throws(() => textToKeystrokes("a\u00a0b\u0007", "gb"), /no key for U\+00A0, U\+0007\./);
    assert.throws(() => textToKeystrokes("snow ☃ 😀", "ch"), /"☃" \(U\+2603\), "😀" \(U\+1F600\)/);
    assert.deepEqual(untypeableCharacters("naïve ñandú", "fr"), ["ï", "ñ", "ú"]);
    assert.deepEqual(untypeableCharacters("´¨", "de"), ["´", "¨"], "spacing accents that differ between systems");
  });
});

describe("QMP input-send-event", () => {
  const key = (data: QKeyCode, down: boolean) => ({ type: "key", data: { down, key: { type: "qcode", data } } });

  test('"A" on us is Shift down, a down, a up, Shift up', () => {
    assert.deepEqual(keystrokesToQmpEvents(textToKeystrokes("A", "us")), [
      [key("shift", true), key("a", true), key("a", false), key("shift", false)],
    ]);
  });

  test('"@" on de is AltGr+Q', () => {
    assert.deepEqual(keystrokesToQmpEvents(textToKeystrokes("@", "de")), [
      [key("alt_r", true), key("q", true), key("q", false), key("alt_r", false)],
    ]);
  });

  test("Shift+AltGr are released in reverse order; a plain key is down, up", () => {
    assert.deepEqual(qmpEventsFor({ key: "bracket_left", shift: true, altgr: true }), [
      key("shift", true), key("alt_r", true), key("bracket_left", true),
      key("bracket_left", false), key("alt_r", false), key("shift", false),
    ]);
    assert.deepEqual(qmpEventsFor({ key: "spc", shift: false, altgr: false }), [key("spc", true), key("spc", false)]);
  });

  test("a dead-key character is two presses", () => {
    assert.deepEqual(keystrokesToQmpEvents(textToKeystrokes("`", "de")), [
      [key("shift", true), key("equal", true), key("equal", false), key("shift", false)],
      [key("spc", true), key("spc", false)],
    ]);
  });
});
