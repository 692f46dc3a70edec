/** QEMU's users: the uid range and its checks, handing out uids, the run folder's reachability, opening what QEMU gets. */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  assertRunDirReachable,
  assertUidRangeUnused,
  closeAll,
  groupId,
  openDescriptors,
  parseUidRange,
  QemuUsers,
} from "../../server/agent/qemu-user";

let dir = "";
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-qemu-user-"));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The access-mode bits of open(2) flags (Node does not export O_ACCMODE). */
const O_ACCMODE = 0o3;

const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};

describe("GUESTHOUSE_QEMU_UIDS", () => {
  test("a range of at least two uids above 1000 that does not hold nobody (65534)", () => {
    assert.deepEqual(parseUidRange("200000-200999"), { firstUid: 200000, lastUid: 200999 });
    assert.deepEqual(parseUidRange(" 70000 - 70001 "), { firstUid: 70000, lastUid: 70001 });
    assert.deepEqual(parseUidRange("60000-60010"), { firstUid: 60000, lastUid: 60010 });
    for (const bad of ["", "200000", "200000-200000", "200001-200000", "0-100", "1000-2000", "65000-66000", "65534-65600", "a-b", "3000000000-3000000001", "-5-10"]) {
      assert.throws(() => parseUidRange(bad), /GUESTHOUSE_QEMU_UIDS/, bad);
    }
  });

  test("a range holding an account, or another program's subordinate ids, is refused with what it holds", () => {
    const files = {
      passwd: write("passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nsvc:x:200005:200005::/:/usr/sbin/nologin\n"),
      subuid: write("subuid", "alice:100000:65536\n"),
      subgid: write("subgid", "# comment\nbob:300000:65536\n"),
    };
    assert.throws(() => assertUidRangeUnused({ firstUid: 200000, lastUid: 200999 }, files), /holds the uid 200005 of the account "svc"/);
    assert.throws(() => assertUidRangeUnused({ firstUid: 150000, lastUid: 150999 }, files), /overlaps the subordinate ids 100000-165535 of "alice"/);
    assert.throws(() => assertUidRangeUnused({ firstUid: 365535, lastUid: 366000 }, files), /subordinate ids 300000-365535 of "bob" in .*subgid/);
    assert.doesNotThrow(() => assertUidRangeUnused({ firstUid: 365536, lastUid: 366000 }, files));
    // Missing files (no containers on the host) hold nothing.
    assert.doesNotThrow(() => assertUidRangeUnused({ firstUid: 200000, lastUid: 200004 }, { ...files, subuid: path.join(dir, "none"), subgid: path.join(dir, "none") }));
  });

  test("the kvm group is found by name in the group file", () => {
    const group = write("group", "root:x:0:\nkvm:x:995:\nkvmx:x:996:\n");
    assert.equal(groupId("kvm", group), 995);
    assert.equal(groupId("libvirt", group), null);
  });
});

describe("handing out QEMU's users", () => {
  test("each guest the lowest uid nobody holds; the last is the probe's; the group is kvm's, or the uid's own number", () => {
    // High in the range: no process on this machine runs as these.
    const users = new QemuUsers({ firstUid: 4000000, lastUid: 4000003 }, 995);
    assert.deepEqual(users.probe(), { uid: 4000003, gid: 995 });
    assert.deepEqual(users.claim([]), { uid: 4000000, gid: 995 });
    assert.deepEqual(users.claim([4000000]), { uid: 4000001, gid: 995 });
    assert.deepEqual(users.claim([4000000, 4000001]), { uid: 4000002, gid: 995 });
    assert.throws(() => users.claim([4000000, 4000001, 4000002]), /Every uid of GUESTHOUSE_QEMU_UIDS \(4000000-4000002\) is taken/);
    assert.deepEqual(new QemuUsers({ firstUid: 4000000, lastUid: 4000003 }, null).claim([]), { uid: 4000000, gid: 4000000 });
  });

  test("a uid some process of the host runs as is not handed out", () => {
    const mine = process.getuid!();
    const users = new QemuUsers({ firstUid: mine, lastUid: mine + 2 }, null);
    assert.equal(users.claim([])!.uid, mine + 1);
  });

  test("an agent that is not root hands out none: QEMU runs as the agent, and the host's info says so", () => {
    const users = new QemuUsers(null, 995);
    assert.equal(users.claim([]), null);
    assert.equal(users.probe(), null);
    assert.match(users.describe(), /agent's own user \(the agent is not root/);
    assert.match(new QemuUsers({ firstUid: 200000, lastUid: 200999 }, 995).describe(), /uids 200000-200998\), group kvm \(995\)/);
  });
});

describe("the run folder", () => {
  test("refused when a folder above it cannot be searched by QEMU's users, with which one", () => {
    const closed = path.join(dir, "closed");
    fs.mkdirSync(path.join(closed, "inner"), { recursive: true });
    fs.chmodSync(dir, 0o711);
    fs.chmodSync(closed, 0o700);
    assert.throws(() => assertRunDirReachable(path.join(closed, "inner", "run")), new RegExp(`${closed} is not searchable by other users \\(mode 0700\\)`));
    fs.chmodSync(closed, 0o711);
    assert.doesNotThrow(() => assertRunDirReachable(path.join(closed, "inner", "run", "not-made-yet")));
  });
});

describe("the files QEMU gets", () => {
  test("opened in order, read-write, read-only and append; never through a symlink; all closed again when one fails", () => {
    const image = write("a.img", "data");
    const log = path.join(dir, "new.log");
    const fds = openDescriptors([
      { path: image, mode: "read-write", set: 1 },
      { path: image, mode: "read-only", set: 1 },
      { path: log, mode: "append", set: 2 },
    ]);
    try {
      assert.equal(fds.length, 3);
      const flags = fds.map((fd) => fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8").match(/flags:\s*(\d+)/)![1]!).map((f) => parseInt(f, 8));
      assert.equal(flags[0]! & O_ACCMODE, fs.constants.O_RDWR);
      assert.equal(flags[1]! & O_ACCMODE, fs.constants.O_RDONLY);
      assert.equal(flags[2]! & O_ACCMODE, fs.constants.O_WRONLY);
      assert.ok(flags[2]! & fs.constants.O_APPEND);
      assert.equal(fs.statSync(log).mode & 0o777, 0o600, "a log it makes is the agent's, 0600");
    } finally {
      closeAll(fds);
    }

    const link = path.join(dir, "link.img");
    fs.symlinkSync(image, link);
    const before = fs.readdirSync("/proc/self/fd").length;
    assert.throws(() => openDescriptors([{ path: image, mode: "read-only", set: 1 }, { path: link, mode: "read-only", set: 2 }]), /could not open link\.img for QEMU \(ELOOP\)/);
    assert.equal(fs.readdirSync("/proc/self/fd").length, before, "the first descriptor was closed again");
  });
});
