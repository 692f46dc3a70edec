/**
 * Keyboard layouts for "paste as keystrokes": turn text into the key presses that
 * type it on a guest whose operating system uses a given keyboard layout, and
 * turn those presses into QMP `input-send-event` events.
 *
 * QEMU sends *physical keys* (QKeyCode names, the same on every layout); the
 * guest's own layout decides which character a key makes. So we need, per
 * layout, which key (and which of Shift / AltGr) makes each character.
 *
 * The tables follow the layouts as Linux defines them in xkb (pc105 + layout,
 * default variant), which the unit test checks key by key against the xkb files.
 * Where xkb and Windows disagree for a character we pick the key printed on the
 * keycap (e.g. Swiss German "|" is AltGr+7, not AltGr+1) and leave characters
 * out that only one of them has on a key (e.g. "é" via AltGr+E on UK keyboards).
 *
 * Decisions:
 * - Dead keys: the spacing characters ^ ` ~ that sit on a dead key (German ^,
 *   Swiss ^ ` ~, Spanish ` ^, German `) are typed as "dead key, then Space",
 *   which yields the bare character on Linux (X11 Compose) and on Windows.
 *   No other dead-key sequence is used: an accented letter a layout has no key
 *   for (é on German, ñ on French) is untypeable, and so are ´ and ¨, because
 *   "dead key, then Space" makes ' and " on Linux but ´ and ¨ on Windows.
 * - Untypeable characters: `textToKeystrokes` throws a GuesthouseError
 *   ("invalid-input") naming every one of them, so nothing half-typed reaches
 *   the guest. `untypeableCharacters` tells the UI beforehand.
 * - Text is NFC-normalized (a decomposed "e + ◌́" becomes "é"); "\r\n" and a
 *   lone "\r" become one Return.
 * - The guest's Caps Lock is assumed off.
 *
 * QKeyCode names checked against QEMU 7.2's own schema (`query-qmp-schema`,
 * enum QKeyCode of qapi/ui.json); "less" is the ISO key next to left Shift
 * (Linux KEY_102ND), "backslash" the key above Return (on ISO keyboards the one
 * left of Return, "#" on UK), "grave_accent" the key left of "1".
 */
import { GuesthouseError } from "./errors";

export const KEYBOARD_LAYOUTS = ["us", "de", "fr", "gb", "es", "it", "ch"] as const;
export type KeyboardLayout = (typeof KEYBOARD_LAYOUTS)[number];

export const KEYBOARD_LAYOUT_NAMES: Record<KeyboardLayout, string> = {
  us: "English (US)",
  de: "German",
  fr: "French (AZERTY)",
  gb: "English (UK)",
  es: "Spanish",
  it: "Italian",
  ch: "German (Switzerland)",
};

function isKeyboardLayout(value: unknown): value is KeyboardLayout {
  return typeof value === "string" && (KEYBOARD_LAYOUTS as readonly string[]).includes(value);
}

/** A guest's stored layout, or "us" when it holds none this version knows. */
export function keyboardLayoutOf(value: unknown): KeyboardLayout {
  return isKeyboardLayout(value) ? value : "us";
}

/** The keys that type text, by QKeyCode name, in keyboard order. */
export const TYPING_KEYS = [
  // number row
  "grave_accent", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equal",
  // top letter row
  "q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "bracket_left", "bracket_right",
  // home row
  "a", "s", "d", "f", "g", "h", "j", "k", "l", "semicolon", "apostrophe", "backslash",
  // bottom row
  "less", "z", "x", "c", "v", "b", "n", "m", "comma", "dot", "slash",
  // the rest
  "spc", "tab", "ret",
] as const;
export type TypingKey = (typeof TYPING_KEYS)[number];
export type ModifierKey = "shift" | "alt_r";
/** The QKeyCode names this module sends. */
export type QKeyCode = TypingKey | ModifierKey;

/** One key press: the key, held together with Shift and/or AltGr (right Alt). */
export interface Keystroke {
  key: TypingKey;
  shift: boolean;
  altgr: boolean;
}

// ---------------------------------------------------------------------------
// The tables

/** A dead key whose "dead key, then Space" types `char`. */
interface Dead {
  dead: string;
}
const dead = (char: string): Dead => ({ dead: char });

/**
 * What a key types at each level: [plain, Shift, AltGr, Shift+AltGr]. A cell is
 * one character, a dead key, or "" for a level we do not use.
 */
type Cells = readonly [plain: Cell, shift?: Cell, altgr?: Cell, shiftAltgr?: Cell];
type Cell = string | Dead;
type KeyTable = Partial<Record<TypingKey, Cells>>;

/**
 * The base position table every layout starts from: the letter keys type their
 * letter (Shift: capital), the digit keys their digit, and Space, Tab and Return.
 * A layout's own table replaces whole keys of it.
 */
const BASE: KeyTable = {
  ...Object.fromEntries(
    [..."abcdefghijklmnopqrstuvwxyz"].map((letter) => [letter, [letter, letter.toUpperCase()]]),
  ),
  ...Object.fromEntries([..."1234567890"].map((digit) => [digit, [digit]])),
  spc: [" "],
  tab: ["\t"],
  ret: ["\n"],
};

const LAYOUT_KEYS: Record<KeyboardLayout, KeyTable> = {
  us: {
    grave_accent: ["`", "~"],
    1: ["1", "!"], 2: ["2", "@"], 3: ["3", "#"], 4: ["4", "$"], 5: ["5", "%"],
    6: ["6", "^"], 7: ["7", "&"], 8: ["8", "*"], 9: ["9", "("], 0: ["0", ")"],
    minus: ["-", "_"], equal: ["=", "+"],
    bracket_left: ["[", "{"], bracket_right: ["]", "}"],
    semicolon: [";", ":"], apostrophe: ["'", '"'], backslash: ["\\", "|"],
    comma: [",", "<"], dot: [".", ">"], slash: ["/", "?"],
  },

  gb: {
    grave_accent: ["`", "¬"],
    1: ["1", "!"], 2: ["2", '"'], 3: ["3", "£"], 4: ["4", "$", "€"], 5: ["5", "%"],
    6: ["6", "^"], 7: ["7", "&"], 8: ["8", "*"], 9: ["9", "("], 0: ["0", ")"],
    minus: ["-", "_"], equal: ["=", "+"],
    bracket_left: ["[", "{"], bracket_right: ["]", "}"],
    semicolon: [";", ":"], apostrophe: ["'", "@"], backslash: ["#", "~"],
    less: ["\\", "|"], comma: [",", "<"], dot: [".", ">"], slash: ["/", "?"],
  },

  de: {
    grave_accent: [dead("^"), "°"],
    1: ["1", "!"], 2: ["2", '"', "²"], 3: ["3", "§", "³"], 4: ["4", "$"], 5: ["5", "%"],
    6: ["6", "&"], 7: ["7", "/", "{"], 8: ["8", "(", "["], 9: ["9", ")", "]"], 0: ["0", "=", "}"],
    minus: ["ß", "?", "\\"], equal: ["", dead("`")], // plain: dead acute
    q: ["q", "Q", "@"], e: ["e", "E", "€"], y: ["z", "Z"],
    bracket_left: ["ü", "Ü"], bracket_right: ["+", "*", "~"],
    semicolon: ["ö", "Ö"], apostrophe: ["ä", "Ä"], backslash: ["#", "'"],
    less: ["<", ">", "|"], z: ["y", "Y"], m: ["m", "M", "µ"],
    comma: [",", ";"], dot: [".", ":"], slash: ["-", "_"],
  },

  fr: {
    grave_accent: ["²"],
    1: ["&", "1"], 2: ["é", "2", "~"], 3: ['"', "3", "#"], 4: ["'", "4", "{"], 5: ["(", "5", "["],
    6: ["-", "6", "|"], 7: ["è", "7", "`"], 8: ["_", "8", "\\"], 9: ["ç", "9", "^"], 0: ["à", "0", "@"],
    minus: [")", "°", "]"], equal: ["=", "+", "}"],
    q: ["a", "A"], w: ["z", "Z"], e: ["e", "E", "€"],
    // bracket_left: dead ^ and dead ¨; ^ is AltGr+9 instead
    bracket_right: ["$", "£", "¤"],
    a: ["q", "Q"], semicolon: ["m", "M"], apostrophe: ["ù", "%"], backslash: ["*", "µ"],
    less: ["<", ">"], z: ["w", "W"], m: [",", "?"], comma: [";", "."], dot: [":", "/"], slash: ["!", "§"],
  },

  es: {
    grave_accent: ["º", "ª", "\\"],
    1: ["1", "!", "|"], 2: ["2", '"', "@"], 3: ["3", "·", "#"], 4: ["4", "$", "~"], 5: ["5", "%"],
    6: ["6", "&", "¬"], 7: ["7", "/"], 8: ["8", "("], 9: ["9", ")"], 0: ["0", "="],
    minus: ["'", "?"], equal: ["¡", "¿"],
    e: ["e", "E", "€"],
    bracket_left: [dead("`"), dead("^"), "["], bracket_right: ["+", "*", "]"],
    semicolon: ["ñ", "Ñ"], apostrophe: ["", "", "{"], // plain and Shift: dead ´ and ¨
    backslash: ["ç", "Ç", "}"],
    less: ["<", ">"], comma: [",", ";"], dot: [".", ":"], slash: ["-", "_"],
  },

  it: {
    grave_accent: ["\\", "|"],
    1: ["1", "!"], 2: ["2", '"'], 3: ["3", "£"], 4: ["4", "$"], 5: ["5", "%"],
    6: ["6", "&"], 7: ["7", "/"], 8: ["8", "("], 9: ["9", ")"], 0: ["0", "="],
    minus: ["'", "?", "`"], equal: ["ì", "^", "~"],
    e: ["e", "E", "€"],
    bracket_left: ["è", "é", "[", "{"], bracket_right: ["+", "*", "]", "}"],
    semicolon: ["ò", "ç", "@"], apostrophe: ["à", "°", "#"], backslash: ["ù", "§"],
    less: ["<", ">"], comma: [",", ";"], dot: [".", ":"], slash: ["-", "_"],
  },

  ch: {
    grave_accent: ["§", "°"],
    1: ["1", "+"], 2: ["2", '"', "@"], 3: ["3", "*", "#"], 4: ["4", "ç"], 5: ["5", "%"],
    6: ["6", "&", "¬"], 7: ["7", "/", "|"], 8: ["8", "(", "¢"], 9: ["9", ")"], 0: ["0", "="],
    minus: ["'", "?"], equal: [dead("^"), dead("`"), dead("~")],
    e: ["e", "E", "€"], y: ["z", "Z"],
    bracket_left: ["ü", "è", "["], bracket_right: ["", "!", "]"], // plain: dead ¨
    semicolon: ["ö", "é"], apostrophe: ["ä", "à", "{"], backslash: ["$", "£", "}"],
    less: ["<", ">", "\\"], z: ["y", "Y"], comma: [",", ";"], dot: [".", ":"], slash: ["-", "_"],
  },
};

// ---------------------------------------------------------------------------
// Character -> key presses, built once from the tables

/** The presses that type one character: one key, or a dead key then Space. */
export type CharacterStrokes = readonly Keystroke[];

const SPACE: Keystroke = Object.freeze({ key: "spc", shift: false, altgr: false });

function buildCharacterMap(layout: KeyboardLayout): ReadonlyMap<string, CharacterStrokes> {
  const keys: KeyTable = { ...BASE, ...LAYOUT_KEYS[layout] };
  const map = new Map<string, CharacterStrokes>();
  for (const key of TYPING_KEYS) {
    (keys[key] ?? []).forEach((cell, level) => {
      if (cell === undefined || cell === "") return;
      const stroke: Keystroke = Object.freeze({ key, shift: level % 2 === 1, altgr: level >= 2 });
      const char = typeof cell === "string" ? cell : cell.dead;
      const strokes = Object.freeze(typeof cell === "string" ? [stroke] : [stroke, SPACE]);
      if ([...char].length !== 1) throw new Error(`keymap ${layout}: ${key} level ${level + 1} is not one character`);
      if (map.has(char)) throw new Error(`keymap ${layout}: ${JSON.stringify(char)} is on two keys`);
      map.set(char, strokes);
    });
  }
  return map;
}

const CHARACTER_MAPS = Object.fromEntries(
  KEYBOARD_LAYOUTS.map((layout) => [layout, buildCharacterMap(layout)]),
) as Record<KeyboardLayout, ReadonlyMap<string, CharacterStrokes>>;

/** Every character a layout can type, each with the presses that type it. */
export function typeableCharacters(layout: KeyboardLayout): ReadonlyMap<string, CharacterStrokes> {
  return CHARACTER_MAPS[layout];
}

/** Text as it is typed: NFC, line endings as "\n" (what the character count of a paste counts). */
export function normalize(text: string): string {
  return text.normalize("NFC").replace(/\r\n?/g, "\n");
}

/** The distinct characters of `text` that `layout` cannot type, in order of first appearance. */
export function untypeableCharacters(text: string, layout: KeyboardLayout): string[] {
  const map = CHARACTER_MAPS[layout];
  const missing = new Set<string>();
  for (const char of normalize(text)) if (!map.has(char)) missing.add(char);
  return [...missing];
}

/** How a character is named in a message: visible ones quoted, all with their code point. */
export function describeCharacter(char: string): string {
  const code = `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
  return /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(char) ? `"${char}" (${code})` : code;
}

/**
 * The key presses that type `text` on a guest using `layout`. Throws a
 * GuesthouseError ("invalid-input") naming every character the layout cannot
 * type; nothing is typed in that case.
 */
export function textToKeystrokes(text: string, layout: KeyboardLayout): Keystroke[] {
  const missing = untypeableCharacters(text, layout);
  if (missing.length > 0) {
    const listed = missing.slice(0, 10).map(describeCharacter).join(", ");
    const more = missing.length > 10 ? ` and ${missing.length - 10} more` : "";
    throw new GuesthouseError(
      "invalid-input",
      `The ${KEYBOARD_LAYOUT_NAMES[layout]} keyboard layout has no key for ${listed}${more}. ` +
        "Remove these characters from the text, or set the guest's keyboard layout if it is wrong.",
      `layout ${layout}; untypeable: ${missing.map(describeCharacter).join(", ")}`,
    );
  }
  const map = CHARACTER_MAPS[layout];
  return [...normalize(text)].flatMap((char) => map.get(char)!.map((stroke) => ({ ...stroke })));
}

// ---------------------------------------------------------------------------
// QMP input-send-event

/** One element of `input-send-event`'s `events` (InputEvent of type "key" with a qcode). */
export interface QmpKeyEvent {
  type: "key";
  data: { down: boolean; key: { type: "qcode"; data: QKeyCode } };
}

function keyEvent(key: QKeyCode, down: boolean): QmpKeyEvent {
  return { type: "key", data: { down, key: { type: "qcode", data: key } } };
}

/** The events of one press: modifiers down, key down, key up, modifiers up (in reverse). */
export function qmpEventsFor(stroke: Keystroke): QmpKeyEvent[] {
  const modifiers: ModifierKey[] = [...(stroke.shift ? ["shift" as const] : []), ...(stroke.altgr ? ["alt_r" as const] : [])];
  return [
    ...modifiers.map((m) => keyEvent(m, true)),
    keyEvent(stroke.key, true),
    keyEvent(stroke.key, false),
    ...[...modifiers].reverse().map((m) => keyEvent(m, false)),
  ];
}

/** One `events` array per press, each to be sent as one `input-send-event`. */
export function keystrokesToQmpEvents(strokes: readonly Keystroke[]): QmpKeyEvent[][] {
  return strokes.map(qmpEventsFor);
}
