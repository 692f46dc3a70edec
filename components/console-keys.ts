/**
 * Key combinations the console's toolbar can send: keys a browser or the person's own
 * desktop would catch (Ctrl-Alt-Del, Ctrl-Alt-F1…F12, Alt-Tab, Print, SysRq).
 * Each key is an X keysym (what noVNC sends to servers without QEMU's extended key
 * events) and a KeyboardEvent.code (noVNC turns it into the PC scancode QEMU uses).
 * Keysyms from X11's keysymdef.h; codes as noVNC's xtscancodes.js names them.
 */

export interface ConsoleKey {
  keysym: number;
  code: string;
}

export interface KeyCombo {
  id: string;
  label: string;
  /** Held in order, released in reverse order, around `key`. */
  modifiers: ConsoleKey[];
  key: ConsoleKey;
  title?: string;
}

const CTRL: ConsoleKey = { keysym: 0xffe3, code: "ControlLeft" };
const ALT: ConsoleKey = { keysym: 0xffe9, code: "AltLeft" };
const SHIFT: ConsoleKey = { keysym: 0xffe1, code: "ShiftLeft" };
const SUPER: ConsoleKey = { keysym: 0xffeb, code: "MetaLeft" };
const DELETE: ConsoleKey = { keysym: 0xffff, code: "Delete" };
const BACKSPACE: ConsoleKey = { keysym: 0xff08, code: "Backspace" };
const TAB: ConsoleKey = { keysym: 0xff09, code: "Tab" };
const ESCAPE: ConsoleKey = { keysym: 0xff1b, code: "Escape" };
const PRINT: ConsoleKey = { keysym: 0xff61, code: "PrintScreen" };
/** Linux's magic SysRq is Alt + the Print Screen key (KEY_SYSRQ) + a letter. */
const SYSRQ: ConsoleKey = { keysym: 0xff15, code: "PrintScreen" };
const fKey = (n: number): ConsoleKey => ({ keysym: 0xffbe + n - 1, code: `F${n}` });
const letter = (c: string): ConsoleKey => ({ keysym: c.charCodeAt(0), code: `Key${c.toUpperCase()}` });

export const CTRL_ALT_DEL: KeyCombo = { id: "ctrl-alt-del", label: "Ctrl-Alt-Del", modifiers: [CTRL, ALT], key: DELETE };

const SYSRQ_KEYS: Array<[string, string]> = [
  ["h", "help"],
  ["s", "sync disks"],
  ["u", "remount read-only"],
  ["e", "terminate all tasks"],
  ["i", "kill all tasks"],
  ["b", "reboot now"],
  ["t", "show tasks"],
  ["w", "show blocked tasks"],
];

/** The menu's groups, in order. */
export const KEY_MENU: Array<{ group: string; combos: KeyCombo[] }> = [
  {
    group: "Common",
    combos: [
      CTRL_ALT_DEL,
      { id: "ctrl-alt-backspace", label: "Ctrl-Alt-Backspace", modifiers: [CTRL, ALT], key: BACKSPACE, title: "Ends an X11 session" },
      { id: "alt-tab", label: "Alt-Tab", modifiers: [ALT], key: TAB },
      { id: "alt-shift-tab", label: "Alt-Shift-Tab", modifiers: [ALT, SHIFT], key: TAB },
      { id: "alt-f4", label: "Alt-F4", modifiers: [ALT], key: fKey(4) },
      { id: "ctrl-esc", label: "Ctrl-Esc", modifiers: [CTRL], key: ESCAPE },
      { id: "super", label: "Super (Windows key)", modifiers: [], key: SUPER },
      { id: "print", label: "Print Screen", modifiers: [], key: PRINT },
      { id: "alt-print", label: "Alt-Print Screen", modifiers: [ALT], key: PRINT },
    ],
  },
  {
    group: "Virtual terminals",
    combos: Array.from({ length: 12 }, (_, i) => ({
      id: `ctrl-alt-f${i + 1}`,
      label: `Ctrl-Alt-F${i + 1}`,
      modifiers: [CTRL, ALT],
      key: fKey(i + 1),
    })),
  },
  {
    group: "Linux magic SysRq (Alt-SysRq-…)",
    combos: SYSRQ_KEYS.map(([c, what]) => ({
      id: `sysrq-${c}`,
      label: `SysRq ${c.toUpperCase()}: ${what}`,
      // SysRq is held like a modifier while the letter is pressed.
      modifiers: [ALT, SYSRQ],
      key: letter(c),
      title: `Alt-SysRq-${c.toUpperCase()} (needs kernel.sysrq enabled in the guest)`,
    })),
  },
];

/** The key events of a combination, as noVNC's sendKey takes them: [keysym, code, down]. */
export function comboEvents(combo: KeyCombo): Array<[number, string, boolean]> {
  return [
    ...combo.modifiers.map((k): [number, string, boolean] => [k.keysym, k.code, true]),
    [combo.key.keysym, combo.key.code, true],
    [combo.key.keysym, combo.key.code, false],
    ...[...combo.modifiers].reverse().map((k): [number, string, boolean] => [k.keysym, k.code, false]),
  ];
}
