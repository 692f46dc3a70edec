/**
 * Input validation at the boundaries (server/domain/validation.ts) and the guest
 * state machine's tables (server/domain/types.ts).
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  createGuestInput,
  GUEST_NAME_RULE,
  guestName,
  guestSpecSchema,
  LIMITS,
  parseOrThrow,
} from "../../server/domain/validation";
import { GuesthouseError } from "../../server/domain/errors";
import {
  allowedActions,
  canDo,
  canTransition,
  GUEST_ACTIONS,
  GUEST_STATES,
  type GuestAction,
  type GuestSpec,
  type GuestState,
} from "../../server/domain/types";

function invalidInput(...mustMention: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof GuesthouseError, `expected a GuesthouseError, got ${String(err)}`);
    assert.equal(err.code, "invalid-input");
    for (const m of mustMention) assert.ok(err.message.includes(m), `message lacks ${JSON.stringify(m)}: ${err.message}`);
    return true;
  };
}

describe("guest names", () => {
  const GOOD = ["a", "A", "0", "web1", "web-1", "web_1", "web.1", "Web.Server-01_x", "a".repeat(63), "1-2-3", "a..b", "a-"];
  for (const name of GOOD) {
    test(`accepts ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…(${name.length})` : name)}`, () => {
      assert.equal(guestName.parse(name), name);
    });
  }

  test("surrounding whitespace is trimmed away, not kept", () => {
    assert.equal(guestName.parse("  web1 "), "web1");
    assert.equal(guestName.parse("web1\n"), "web1");
  });

  const BAD: [string, string][] = [
    ["empty", ""],
    ["only spaces", "   "],
    ["leading dash", "-web"],
    ["leading dot", ".web"],
    ["leading underscore", "_web"],
    ["64 characters", "a".repeat(64)],
    ["a space inside", "web 1"],
    ["a tab inside", "web\t1"],
    ["a newline inside", "web\n1"],
    ["path traversal", "../x"],
    ["a slash", "a/b"],
    ["a backslash", "a\\b"],
    ["a comma", "a,b"],
    ["an equals sign", "a=b"],
    ["a colon", "a:b"],
    ["unicode letters", "gäst"],
    ["unicode lookalike", "wеb1"], // Cyrillic е
    ["emoji", "vm🙂"],
    ["a NUL byte", "a\u0000b"],
    ["command substitution", "$(reboot)"],
    ["backticks", "`id`"],
    ["a semicolon", "a;b"],
    ["a pipe", "a|b"],
    ["an ampersand", "a&b"],
    ["redirection", "a>b"],
    ["quotes", `a'b"c`],
    ["a glob", "a*"],
    ["a dollar", "a$b"],
  ];
  for (const [what, name] of BAD) {
    test(`rejects ${what} with a message naming the rule`, () => {
      const result = guestName.safeParse(name);
      assert.equal(result.success, false, `accepted ${JSON.stringify(name)}`);
      assert.ok(
        result.error?.issues.some((i) => i.message.includes(GUEST_NAME_RULE)),
        JSON.stringify(result.error?.issues),
      );
      // And through the boundary helper: invalid-input, naming the field and the rule.
      assert.throws(() => parseOrThrow(createGuestInput, { ...FORM, name }, "The new guest"), invalidInput("name", GUEST_NAME_RULE));
    });
  }

  test("the rule says what is allowed", () => {
    for (const word of ["63", "letters", "digits", "'.'", "'_'", "'-'"]) assert.ok(GUEST_NAME_RULE.includes(word), word);
  });

  test("a non-string name is rejected", () => {
    for (const name of [42, null, undefined, ["web1"], { name: "web1" }]) {
      assert.equal(guestName.safeParse(name).success, false, JSON.stringify(name));
    }
  });
});

/** A valid create-guest form, as FormData would give it (strings). */
const FORM = {
  name: "web1",
  vcpus: "2",
  memoryMiB: "512",
  diskGiB: "10",
  diskBus: "virtio",
  iso: "debian-12.iso",
  network: "user",
  boot: "cdrom",
} as const;

describe("createGuestInput", () => {
  test("a valid form parses, with numbers coerced", () => {
    assert.deepEqual(parseOrThrow(createGuestInput, FORM), {
      name: "web1",
      vcpus: 2,
      memoryMiB: 512,
      diskGiB: 10,
      diskBus: "virtio",
      iso: "debian-12.iso",
      network: "user",
      boot: "cdrom",
    });
  });

  test("the limits themselves are accepted", () => {
    const low = parseOrThrow(createGuestInput, { ...FORM, vcpus: "1", memoryMiB: String(LIMITS.memoryMiB.min), diskGiB: "1" });
    assert.equal(low.vcpus, 1);
    assert.equal(low.memoryMiB, 16);
    const high = parseOrThrow(createGuestInput, {
      ...FORM,
      vcpus: String(LIMITS.vcpus.max),
      memoryMiB: String(LIMITS.memoryMiB.max),
      diskGiB: String(LIMITS.diskGiB.max),
    });
    assert.equal(high.vcpus, 64);
    assert.equal(high.memoryMiB, 1024 * 1024);
    assert.equal(high.diskGiB, 64 * 1024);
  });

  test("no disk (the number 0) and no CD-ROM (empty) are accepted", () => {
    const input = parseOrThrow(createGuestInput, { ...FORM, diskGiB: 0, iso: "", boot: "disk" });
    assert.equal(input.diskGiB, 0);
    assert.equal(input.iso, "");
  });

  // Form data always arrives as text: "0" must mean "no disk" (it once fell through to
  // the disk-size rule and was refused).
  test('no disk as the form sends it (the string "0") is accepted as 0', () => {
    const input = parseOrThrow(createGuestInput, { ...FORM, diskGiB: "0" });
    assert.equal(input.diskGiB, 0);
  });

  const BAD: [string, Record<string, unknown>, string[]][] = [
    ["memory 0", { memoryMiB: "0" }, ["memoryMiB", "Memory", "at least 16"]],
    ["memory 10^9", { memoryMiB: "1000000000" }, ["memoryMiB", "Memory", "at most"]],
    ["memory 15", { memoryMiB: "15" }, ["memoryMiB", "at least 16"]],
    ["memory fractional", { memoryMiB: "512.5" }, ["memoryMiB", "whole number"]],
    ["memory not a number", { memoryMiB: "lots" }, ["memoryMiB", "Memory must be a whole number"]],
    ["memory Infinity", { memoryMiB: "Infinity" }, ["memoryMiB"]],
    ["vcpus 0", { vcpus: "0" }, ["vcpus", "vCPUs", "at least 1"]],
    ["vcpus 65", { vcpus: "65" }, ["vcpus", "at most 64"]],
    ["vcpus negative", { vcpus: "-2" }, ["vcpus", "at least 1"]],
    ["vcpus not a number", { vcpus: "two" }, ["vcpus", "vCPUs must be a whole number"]],
    ["vcpus NaN", { vcpus: "NaN" }, ["vcpus"]],
    ["disk size negative", { diskGiB: "-5" }, ["diskGiB", "Disk size", "at least 0"]],
    ["disk size negative number", { diskGiB: -5 }, ["diskGiB"]],
    ["disk size too large", { diskGiB: String(64 * 1024 + 1) }, ["diskGiB", "at most"]],
    ["disk size not a number", { diskGiB: "big" }, ["diskGiB"]],
    ["disk size fractional", { diskGiB: "1.5" }, ["diskGiB"]],
    ["unknown disk bus", { diskBus: "scsi" }, ["diskBus"]],
    ["unknown network", { network: "bridge" }, ["network"]],
    ["unknown boot device", { boot: "floppy" }, ["boot"]],
    ["ISO path traversal", { iso: "../etc/passwd.iso" }, ["iso", "ISO"]],
    ["ISO not an .iso", { iso: "disk.qcow2" }, ["iso"]],
  ];
  for (const [what, patch, mention] of BAD) {
    test(`rejects ${what} with invalid-input naming the field`, () => {
      assert.throws(() => parseOrThrow(createGuestInput, { ...FORM, ...patch }, "The new guest"), invalidInput("The new guest", ...mention));
    });
  }

  test("every problem is named, not just the first", () => {
    assert.throws(
      () => parseOrThrow(createGuestInput, { ...FORM, vcpus: "0", memoryMiB: "0", name: "-x" }),
      invalidInput("vcpus", "memoryMiB", "name"),
    );
  });

  test("unknown fields are rejected", () => {
    assert.throws(() => parseOrThrow(createGuestInput, { ...FORM, hostPath: "/etc" }), invalidInput("hostPath"));
  });

  test("missing fields are rejected", () => {
    const { vcpus: _vcpus, ...withoutVcpus } = FORM;
    assert.throws(() => parseOrThrow(createGuestInput, withoutVcpus), invalidInput("vcpus"));
  });
});

const SPEC: GuestSpec = {
  id: "abcd1234",
  name: "web1",
  vcpus: 2,
  memoryMiB: 512,
  disks: [{ volume: "vol00001", format: "qcow2", bus: "virtio" }],
  cdroms: [{ iso: "debian-12.4.0-amd64-netinst.iso" }],
  nics: [{ mac: "52:54:00:12:34:56", model: "virtio", mode: "user" }],
  boot: "cdrom",
};

describe("guestSpecSchema", () => {
  test("a valid spec parses unchanged", () => {
    assert.deepEqual(parseOrThrow(guestSpecSchema, SPEC), SPEC);
  });

  const UNKNOWN: [string, unknown][] = [
    ["top level", { ...SPEC, qemuArgs: ["-monitor", "tcp::4444"] }],
    ["in a disk", { ...SPEC, disks: [{ ...SPEC.disks[0], path: "/etc/shadow" }] }],
    ["in a cdrom", { ...SPEC, cdroms: [{ iso: "a.iso", path: "/etc/passwd" }] }],
    ["in a nic", { ...SPEC, nics: [{ ...SPEC.nics[0], script: "/tmp/x.sh" }] }],
  ];
  for (const [where, value] of UNKNOWN) {
    test(`rejects an unknown field ${where}`, () => {
      assert.throws(() => parseOrThrow(guestSpecSchema, value), invalidInput());
    });
  }

  const BAD_ISOS = [
    "../etc/passwd.iso",
    "/abs.iso",
    "dir/a.iso",
    "..\\a.iso",
    ".hidden.iso",
    ".iso",
    "a.iso/",
    "a.iso\n",
    "a b.iso",
    "a,b.iso",
    "a.ISO",
    "a.img",
    "-a.iso",
    "",
  ];
  for (const iso of BAD_ISOS) {
    test(`rejects the ISO name ${JSON.stringify(iso)}`, () => {
      assert.throws(
        () => parseOrThrow(guestSpecSchema, { ...SPEC, cdroms: [{ iso }] }),
        invalidInput("cdroms.0.iso", "plain file name"),
      );
    });
  }

  const BAD_FIELDS: [string, Partial<Record<keyof GuestSpec, unknown>>, string][] = [
    ["an id with a slash", { id: "../abcd123" }, "id"],
    ["an uppercase id", { id: "ABCD1234" }, "id"],
    ["a short id", { id: "abc" }, "id"],
    ["a volume with a path", { disks: [{ volume: "../../etc/x", format: "qcow2", bus: "virtio" }] }, "disks.0.volume"],
    ["an unknown disk format", { disks: [{ volume: "vol00001", format: "vmdk", bus: "virtio" }] }, "disks.0.format"],
    ["an uppercase MAC", { nics: [{ mac: "52:54:00:AB:CD:EF", model: "virtio", mode: "user" }] }, "nics.0.mac"],
    ["a MAC outside QEMU's prefix", { nics: [{ mac: "00:11:22:33:44:55", model: "virtio", mode: "user" }] }, "nics.0.mac"],
    ["a tap NIC", { nics: [{ mac: "52:54:00:12:34:56", model: "virtio", mode: "tap" }] }, "nics.0.mode"],
    ["9 disks", { disks: Array.from({ length: 9 }, (_, i) => ({ volume: `vol0000${i}`, format: "raw", bus: "virtio" })) }, "disks"],
    ["5 cdroms", { cdroms: Array.from({ length: 5 }, (_, i) => ({ iso: `c${i}.iso` })) }, "cdroms"],
    ["a bad name", { name: "a,b" }, "name"],
    ["zero memory", { memoryMiB: 0 }, "memoryMiB"],
  ];
  for (const [what, patch, field] of BAD_FIELDS) {
    test(`rejects ${what}`, () => {
      assert.throws(() => parseOrThrow(guestSpecSchema, { ...SPEC, ...patch }), invalidInput(field));
    });
  }
});

describe("guest state machine tables", () => {
  test("the states and actions are exactly these", () => {
    assert.deepEqual([...GUEST_STATES], ["stopped", "starting", "running", "paused", "shutting-down", "crashed"]);
    assert.deepEqual([...GUEST_ACTIONS], ["start", "shutdown", "reboot", "reset", "pause", "resume", "force-off", "console", "delete"]);
  });

  /** Written out by hand: which buttons each state offers. */
  const ACTIONS: Record<GuestState, GuestAction[]> = {
    stopped: ["start", "delete"],
    starting: ["force-off"],
    running: ["shutdown", "reboot", "reset", "pause", "force-off", "console"],
    paused: ["resume", "reset", "force-off", "console"],
    "shutting-down": ["force-off", "console"],
    crashed: ["start", "delete"],
  };
  for (const state of GUEST_STATES) {
    for (const action of GUEST_ACTIONS) {
      const expected = ACTIONS[state].includes(action);
      test(`canDo(${state}, ${action}) is ${expected}`, () => {
        assert.equal(canDo(state, action), expected);
      });
    }
    test(`allowedActions(${state}) is exactly ${ACTIONS[state].join(", ")}`, () => {
      assert.deepEqual([...allowedActions(state)].sort(), [...ACTIONS[state]].sort());
    });
  }

  test("a few rules spelled out", () => {
    assert.equal(canDo("running", "delete"), false, "a running guest cannot be deleted");
    assert.equal(canDo("running", "start"), false);
    assert.equal(canDo("stopped", "console"), false, "no console without QEMU");
    assert.equal(canDo("stopped", "force-off"), false);
    assert.equal(canDo("crashed", "start"), true);
  });

  /** Written out by hand: which state may follow which. */
  const NEXT: Record<GuestState, GuestState[]> = {
    stopped: ["starting"],
    crashed: ["starting"],
    starting: ["running", "paused", "stopped", "crashed"],
    running: ["paused", "shutting-down", "stopped", "crashed"],
    paused: ["running", "shutting-down", "stopped", "crashed"],
    "shutting-down": ["stopped", "crashed"],
  };
  for (const from of GUEST_STATES) {
    for (const to of GUEST_STATES) {
      const expected = NEXT[from].includes(to);
      test(`canTransition(${from} → ${to}) is ${expected}`, () => {
        assert.equal(canTransition(from, to), expected);
      });
    }
  }

  test("illegal shortcuts are refused", () => {
    assert.equal(canTransition("stopped", "running"), false, "stopped → running skips starting");
    assert.equal(canTransition("stopped", "paused"), false);
    assert.equal(canTransition("crashed", "running"), false);
    assert.equal(canTransition("shutting-down", "running"), false);
    for (const s of GUEST_STATES) assert.equal(canTransition(s, s), false, `${s} → ${s} is not a change`);
  });

  test("every state is reachable from stopped, and every state can end in stopped", () => {
    const reach = (from: GuestState) => {
      const seen = new Set<GuestState>([from]);
      const queue = [from];
      while (queue.length) {
        const s = queue.shift()!;
        for (const t of GUEST_STATES) if (canTransition(s, t) && !seen.has(t)) (seen.add(t), queue.push(t));
      }
      return seen;
    };
    assert.deepEqual([...reach("stopped")].sort(), [...GUEST_STATES].sort());
    for (const s of GUEST_STATES) assert.ok(reach(s).has("stopped"), `${s} cannot get back to stopped`);
  });

  test("an action offered in a state leads somewhere legal", () => {
    // start → starting; shutdown and reboot → shutting-down; force-off → stopped;
    // pause → paused; resume → running.
    for (const s of GUEST_STATES) {
      if (canDo(s, "start")) assert.ok(canTransition(s, "starting"), s);
      if (canDo(s, "shutdown")) assert.ok(canTransition(s, "shutting-down"), s);
      if (canDo(s, "reboot")) assert.ok(canTransition(s, "shutting-down"), s);
      if (canDo(s, "force-off")) assert.ok(canTransition(s, "stopped"), s);
      if (canDo(s, "pause")) assert.ok(canTransition(s, "paused"), s);
      if (canDo(s, "resume")) assert.ok(canTransition(s, "running"), s);
    }
  });
});
