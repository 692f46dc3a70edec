/**
 * Crafted images uploaded by a member through the real web server to a real agent,
 * while strace records every file the agent and its children (qemu-img) touch by name:
 * qcow2 images with a backing file in every spelling and with external data files,
 * VMDKs whose descriptor names a parent or extents (embedded, text-only, hidden past
 * the header, COWD), damaged headers, VDI and VHD (which are converted), and names an
 * attacker would choose. What must hold: every crafted image is refused with a reason
 * or arrives as a self-contained qcow2 or raw disk; nothing of a refused one is kept;
 * and no file outside the storage folders is touched by name, whatever the header says.
 * The images that arrive are then started as a guest's disks: QEMU opens none by name.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { createSession, SESSION_COOKIE } from "../../server/auth/sessions";
import { FileTrace, type FileAccess } from "../helpers/file-trace";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";
import { startTestStack, type TestStack } from "../helpers/web";
import { recordFigures } from "./figures";

const MiB = 2 ** 20;
const qemuImg = (...args: string[]) => execFileSync("qemu-img", ["create", "-q", ...args]);

/** Writes `text` into `file` at `offset` (a header field, a descriptor). */
function patch(file: string, offset: number, text: string | Buffer): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.writeSync(fd, typeof text === "string" ? Buffer.from(text, "latin1") : text, 0, undefined, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** A monolithicSparse VMDK whose embedded descriptor (at 0x200) is replaced by `descriptor`. */
function sparseVmdk(dir: string, name: string, descriptor: string, opts: { hideDescriptor?: boolean } = {}): string {
  const file = path.join(dir, name);
  qemuImg("-f", "vmdk", "-o", "subformat=monolithicSparse", file, "16M");
  const padded = Buffer.alloc(10 * 1024);
  padded.write(descriptor, "latin1");
  patch(file, 0x200, padded);
  // The header's descriptor offset and size (sectors, little-endian u64 at 28 and 36): zero
  // claims there is none, so a reader that trusts the header reads no descriptor.
  if (opts.hideDescriptor) patch(file, 28, Buffer.alloc(16));
  return file;
}

/** A COWD (VMDK3) header naming a parent file: magic, version, flags, sectors, grain, parent path at 0x20. */
function cowd(dir: string, name: string, parent: string): string {
  const header = Buffer.alloc(2048);
  header.write("COWD", 0, "latin1");
  header.writeUInt32LE(1, 4);
  header.writeUInt32LE(3, 8);
  header.writeUInt32LE(2048, 12);
  header.writeUInt32LE(1, 16);
  header.writeUInt32LE(4, 20);
  header.writeUInt32LE(1, 24);
  header.write(parent, 0x20, "latin1");
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([header, Buffer.alloc(MiB)]));
  return file;
}

interface Crafted {
  name: string;
  file: string;
  /** "refused" or the format the disk must arrive in. */
  expect: "refused" | "qcow2" | "raw";
  why?: RegExp;
}

story("crafted images uploaded by a member", (step) => {
  let stack: TestStack;
  let trace: FileTrace;
  let cookie = "";
  let scratch = "";
  const results: Array<{ name: string; status: number; error?: string; format?: string }> = [];
  const disksDir = () => path.join(stack.agent.dataDir, "disks");

  const upload = (name: string, data: Buffer): Promise<{ status: number; json: Record<string, unknown> | null }> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port: stack.port, method: "PUT", path: `/upload/default/${name}?size=${data.length}`, headers: { cookie, origin: stack.baseUrl, "content-length": data.length } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as Record<string, unknown>) : null });
          });
        },
      );
      req.on("error", reject);
      req.end(data);
    });

  before(async () => {
    stack = await startTestStack();
    const db = stack.database.db;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const member = await db.user.create({ data: { username: "mallory", passwordHash: "x", role: "member", teamId: admin.teamId, memberships: { create: { teamId: admin.teamId, role: "member" } } } });
    cookie = `${SESSION_COOKIE}=${(await createSession(db, member.id)).secret}`;
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "gh-crafted-"));
    // Another member's disk the crafted images reach for.
    qemuImg("-f", "qcow2", path.join(disksDir(), "victim.qcow2"), "64M");
    trace = await FileTrace.attach(stack.agent.process.pid!, path.join(scratch, "agent.strace"), process.cwd());
  });
  after(async () => {
    await stack?.cleanup();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  const crafted = (): Crafted[] => {
    const list: Crafted[] = [];
    const backings: Array<[string, string]> = [
      ["/etc/shadow", "raw"],
      ["../../../../etc/shadow", "raw"],
      ["victim.qcow2", "qcow2"],
      ["./victim.qcow2", "qcow2"],
      [`${"../".repeat(3)}disks/victim.qcow2`, "qcow2"],
      ['json:{"driver":"raw","file":{"driver":"file","filename":"/etc/shadow"}}', "raw"],
      ["file:/etc/shadow", "raw"],
      ["/dev/fdset/0", "raw"],
      ["/proc/self/root/etc/shadow", "raw"],
      ["nbd://127.0.0.1:10809/x", "raw"],
    ];
    backings.forEach(([backing, format], i) => {
      const file = path.join(scratch, `backing${i}.qcow2`);
      qemuImg("-f", "qcow2", "-u", "-b", backing, "-F", format, file, "64M");
      list.push({ name: `backing${i}.qcow2`, file, expect: "refused", why: /based on|backing|not an image/i });
    });
    // A backing file named without its format (qemu-img would probe it).
    const noFormat = path.join(scratch, "backing-unformatted.qcow2");
    qemuImg("-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", noFormat, "64M");
    list.push({ name: "backing-unformatted.qcow2", file: noFormat, expect: "refused" });
    // External data files.
    for (const [i, raw] of ["on", "off"].entries()) {
      const file = path.join(scratch, `datafile${i}.qcow2`);
      qemuImg("-f", "qcow2", "-o", `data_file=${path.join(scratch, `data${i}.bin`)},data_file_raw=${raw}`, file, "1M");
      list.push({ name: `datafile${i}.qcow2`, file, expect: "refused", why: /data in another file/ });
    }
    // VMDK descriptors naming a parent: embedded, hidden (the header claims none), oddly spelled.
    const parents = ['parentFileNameHint="/etc/shadow"', "parentFileNameHint='/etc/shadow'", "parentFileNameHint = /etc/shadow", 'parentFileNameHint\t=\t"../victim.qcow2"'];
    parents.forEach((line, i) => {
      const descriptor = `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=12345678\ncreateType="monolithicSparse"\n${line}\nRW 32768 SPARSE "x.vmdk"\n`;
      list.push({ name: `parent${i}.vmdk`, file: sparseVmdk(scratch, `parent${i}.vmdk`, descriptor), expect: "refused" });
      list.push({ name: `hidden${i}.vmdk`, file: sparseVmdk(scratch, `hidden${i}.vmdk`, descriptor, { hideDescriptor: true }), expect: "refused" });
    });
    // A descriptor naming extents: flat files elsewhere.
    const extents = path.join(scratch, "extents.vmdk");
    fs.writeFileSync(extents, '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "/etc/shadow" 0\nRW 2048 FLAT "victim.qcow2" 0\n');
    list.push({ name: "extents.vmdk", file: extents, expect: "refused", why: /VMDK descriptor/ });
    list.push({ name: "cowd.vmdk", file: cowd(scratch, "cowd.vmdk", "/etc/shadow"), expect: "refused" });
    // A damaged qcow2 header (a version no QEMU knows).
    const damaged = path.join(scratch, "damaged.qcow2");
    qemuImg("-f", "qcow2", damaged, "64M");
    patch(damaged, 4, Buffer.from([0, 0, 0, 99]));
    list.push({ name: "damaged.qcow2", file: damaged, expect: "refused" });
    // Formats guests do not use, plain: converted to qcow2 as they are registered.
    for (const format of ["vdi", "vpc", "vhdx"]) {
      const file = path.join(scratch, `plain.${format}`);
      qemuImg("-f", format, file, "16M");
      list.push({ name: `plain-${format}.img`, file, expect: "qcow2" });
    }
    const plainVmdk = path.join(scratch, "plain.vmdk");
    qemuImg("-f", "vmdk", plainVmdk, "16M");
    list.push({ name: "plain.vmdk", file: plainVmdk, expect: "qcow2" });
    // Raw bytes stay raw; a raw file whose first bytes say qcow2 with a host backing file is read as what it says, and refused.
    const raw = path.join(scratch, "plain.raw");
    fs.writeFileSync(raw, Buffer.alloc(MiB, 1));
    list.push({ name: "plain.raw", file: raw, expect: "raw" });
    return list;
  };

  step("each crafted image is refused with a reason, or arrives as a self-contained qcow2 or raw disk; nothing of a refused one is kept", { timeout: 300_000 }, async () => {
    for (const c of crafted()) {
      const answer = await upload(c.name, fs.readFileSync(c.file));
      const error = typeof answer.json?.error === "string" ? answer.json.error : undefined;
      results.push({ name: c.name, status: answer.status, error, format: typeof answer.json?.format === "string" ? answer.json.format : undefined });
      if (c.expect === "refused") {
        assert.ok(answer.status >= 400 && answer.status < 500, `${c.name} is refused (${answer.status} ${JSON.stringify(answer.json)})`);
        assert.ok(error && error.length > 20, `${c.name}: the refusal says why`);
        if (c.why) assert.match(error, c.why, c.name);
        assert.deepEqual(fs.readdirSync(disksDir()).filter((f) => f.startsWith(c.name)), [], `nothing of ${c.name} is kept`);
        assert.equal(await stack.database.db.disk.count({ where: { file: { startsWith: c.name.replace(/\.[^.]+$/, "") } } }), 0);
      } else {
        assert.equal(answer.status, 201, `${c.name} arrives (${JSON.stringify(answer.json)})`);
      }
    }
    // The converted ones become ready once their task ends; then every disk is self-contained.
    const disks = await waitForReady(stack, 120_000);
    for (const d of disks) {
      const info = JSON.parse(execFileSync("qemu-img", ["info", "-U", "--output=json", "-f", d.format, path.join(disksDir(), d.file)], { encoding: "utf8" })) as Record<string, unknown>;
      assert.ok(["qcow2", "raw"].includes(d.format), `${d.file} is ${d.format}`);
      assert.equal(info["backing-filename"], undefined, `${d.file} names no backing file`);
      assert.equal((info["format-specific"] as { data?: { "data-file"?: string } } | undefined)?.data?.["data-file"], undefined, `${d.file} names no data file`);
    }
    assert.equal(disks.length, 5, "the four converted and the raw one");
  });

  step("the disks that arrived start as a guest's disks, even one whose bytes the guest turned into a qcow2 header naming a host file; QEMU and the agent touched no file outside the storage folders by name", { timeout: 120_000 }, async () => {
    const all = await stack.database.db.disk.findMany({ where: { state: "ready" }, orderBy: { file: "asc" } });
    // What a guest can do to its raw disk after registration: write a qcow2 header (with a
    // backing file) into its first sector. The disk is registered raw and opened as raw.
    const raw = all.find((d) => d.format === "raw")!;
    const header = path.join(scratch, "guest-written.qcow2");
    qemuImg("-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", header, "64M");
    patch(path.join(disksDir(), raw.file), 0, fs.readFileSync(header).subarray(0, 4096));
    const disks = [raw, ...all.filter((d) => d !== raw).slice(0, 3)];
    const spec = testSpec("guestcraft001", {
      disks: disks.map((d, i) => ({ volume: d.volume, pool: "default", file: d.file, format: d.format as "qcow2" | "raw", backing: [], encrypted: false, bus: "virtio", cache: "none", readOnly: i > 0 })),
    });
    const status = await stack.agent.client.start(spec);
    assert.equal(status.state, "running");
    await stack.agent.client.forceOff(spec.id);

    const accesses: FileAccess[] = await trace.stop();
    const data = stack.agent.dataDir;
    const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
    // Names only a crafted header holds; and the other member's disk, opened by qemu-img or QEMU.
    // (QEMU itself opens the fd sets the agent handed it as /dev/fdset/N.)
    const hostile = accesses.filter(
      (a) => /shadow|nbd:|json:|file:|data[01]\.bin/.test(a.path) || (/\/dev\/fdset/.test(a.path) && !/^qemu-system/.test(a.program)) || (/victim/.test(a.path) && /^qemu/.test(a.program)),
    );
    const qemuByName = accesses.filter((a) => /^qemu-system/.test(a.program) && a.syscall !== "execve" && (under(a.path, path.join(data, "disks")) || under(a.path, path.join(data, "images"))));
    // Files opened for writing that exist (QEMU probes devices such as /dev/sgx_vepc and finds none).
    // The agent's own to write: its data folder and its guests' cgroups.
    const outsideWrites = accesses.filter(
      (a) => a.writes && a.result === "ok" && a.path !== "/dev/kvm" && !under(a.path, data) && !(stack.agent.cgroupDir !== null && under(a.path, stack.agent.cgroupDir)) && a.path !== "/dev/null" && !a.path.startsWith(path.join(os.tmpdir(), "tsx-")),
    );
    recordFigures("crafted-images", {
      images: results.length,
      refused: results.filter((r) => r.status >= 400).length,
      arrived: results.filter((r) => r.status === 201).length,
      fileAccessesSeen: accesses.length,
      programsSeen: [...new Set(accesses.map((a) => a.program).filter(Boolean))].sort(),
      hostilePathsTouched: hostile.length,
      qemuImagesOpenedByName: qemuByName.length,
      writesOutsideDataFolder: outsideWrites.length,
    });
    assert.deepEqual(hostile.map((a) => `${a.program} ${a.syscall} ${a.path}`), [], "a name from a crafted header reached the file system");
    assert.deepEqual(qemuByName.map((a) => `${a.syscall} ${a.path}`), [], "QEMU opened an image by name");
    assert.deepEqual(outsideWrites.map((a) => `${a.program} ${a.syscall} ${a.path}`), []);
  });
});

/** The member's disks once none is pending any more. */
async function waitForReady(stack: TestStack, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = await stack.database.db.disk.count({ where: { state: "pending" } });
    if (pending === 0) return stack.database.db.disk.findMany({ where: { state: "ready" } });
    if (Date.now() > deadline) throw new Error(`${pending} disks still pending after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
