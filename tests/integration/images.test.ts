/**
 * Image operations through a real agent and real qemu-img: create (plain and
 * encrypted), convert with progress and cancel, resize, offline snapshots, check,
 * uploads (streamed, resumed, cancelled, refused), faults (a full folder, a corrupt
 * image, two operations at once) and names that try to leave the storage folder.
 * Every result is checked with qemu-img itself.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import type { DiskRef } from "../../server/agent-client";
import type { TaskStatus } from "../../server/domain/types";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { mountTmpfs, type TestTmpfs } from "../helpers/tmpfs";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const isCode = (code: string) => (err: Error & { code?: string }) => err.code === code;

describe("images with real qemu-img", () => {
  let agent: TestAgent;
  const ref = (file: string) => ({ pool: "default", file });
  /** A registered disk's reference: its format is the one its name ends in. */
  const disk = (file: string): DiskRef => ({ ...ref(file), format: file.endsWith(".qcow2") ? "qcow2" : "raw" });
  const file = (name: string, pool = "disks") => path.join(agent.dataDir, pool, name);
  const qemuInfo = (name: string) => JSON.parse(execFileSync("qemu-img", ["info", "-U", "--output=json", file(name)], { encoding: "utf8" }));
  const qemuCheck = (name: string) => execFileSync("qemu-img", ["check", file(name)], { encoding: "utf8" });

  before(async () => {
    agent = await startTestAgent();
  });
  after(async () => {
    await agent?.cleanup();
  });

  test("create: sparse qcow2 and raw of the asked size; the name is taken afterwards", async () => {
    const info = await agent.client.createImage({ ...ref("a.qcow2"), format: "qcow2", bytes: 10 * GiB, volume: "volimg000001" });
    assert.equal(info.format, "qcow2");
    assert.equal(info.virtualBytes, 10 * GiB);
    assert.ok(info.actualBytes < 2 * MiB, `a new qcow2 is sparse (${info.actualBytes} bytes allocated)`);
    assert.equal(qemuInfo("a.qcow2")["virtual-size"], 10 * GiB);
    qemuCheck("a.qcow2");

    const raw = await agent.client.createImage({ ...ref("b.raw"), format: "raw", bytes: 512 * MiB, volume: "volimg000002" });
    assert.equal(raw.format, "raw");
    assert.equal(fs.statSync(file("b.raw")).size, 512 * MiB);
    assert.ok(fs.statSync(file("b.raw")).blocks * 512 < MiB, "the raw file is sparse too");

    await assert.rejects(agent.client.createImage({ ...ref("a.qcow2"), format: "qcow2", bytes: GiB, volume: "volimg000003" }), isCode("conflict"));
    assert.equal(qemuInfo("a.qcow2")["virtual-size"], 10 * GiB, "the existing image is untouched");
  });

  test("names that would leave the storage folder are refused before anything is touched", async () => {
    const outside = path.join(agent.dataDir, "outside.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", outside, "1G"]);
    fs.symlinkSync(outside, file("link.qcow2"));
    for (const name of ["../outside.qcow2", "..", ".hidden", "a/b.qcow2", "/etc/passwd", "x.part", "a b", "%2e%2e"]) {
      await assert.rejects(agent.client.image(ref(name)), (err: Error & { code?: string }) => ["invalid-input", "not-found"].includes(err.code ?? ""), name);
    }
    await assert.rejects(agent.client.image(ref("link.qcow2")), /symbolic link/);
    await assert.rejects(agent.client.resizeImage(disk("link.qcow2"), 2 * GiB, false), /symbolic link/);
    await assert.rejects(agent.client.image({ pool: "nosuchpool", file: "a.qcow2" }), isCode("not-found"));
    assert.equal(JSON.parse(execFileSync("qemu-img", ["info", "--output=json", outside], { encoding: "utf8" }))["virtual-size"], GiB);
    const listed = await agent.client.images();
    assert.ok(!listed.some((i) => i.file === "link.qcow2"), "symlinks are not listed as images");
    fs.rmSync(file("link.qcow2"));
  });

  test("backing files: only images in the storage folders; a host file, a symlink or an ISO under an image is refused before it is opened", async () => {
    // A linked clone made the way Guesthouse makes them: its base is listed.
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", file("base.qcow2"), "1G"]);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", file("clone.qcow2")]);
    assert.deepEqual((await agent.client.image(ref("clone.qcow2"))).backing, ["base.qcow2"]);
    // Uploaded images carry whatever header their maker wrote.
    fs.mkdirSync(path.join(agent.dataDir, "elsewhere"), { recursive: true });
    fs.writeFileSync(path.join(agent.dataDir, "elsewhere", "secret.raw"), "host secret");
    fs.symlinkSync(file("base.qcow2"), file("via-link.qcow2"));
    const hostile: Array<[string, string, string]> = [
      ["evil-host.qcow2", "/etc/hostname", "raw"],
      ["evil-up.qcow2", "../elsewhere/secret.raw", "raw"],
      ["evil-secret.qcow2", path.join(agent.dataDir, "secrets", "any.key"), "raw"],
      ["evil-link.qcow2", "via-link.qcow2", "qcow2"],
      ["evil-iso.qcow2", path.join(agent.dataDir, "images", "demo.iso"), "raw"],
      ["evil-dev.qcow2", "/dev/zero", "raw"],
    ];
    for (const [name, backing, format] of hostile) {
      // -u: qemu-img does not look at the backing file while writing the header.
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", format, file(name), "1G"]);
      await assert.rejects(agent.client.image(ref(name)), (err: Error & { code?: string }) => err.code === "invalid-input" && /is based on ".+", which is not an image in this host's storage folders/.test(err.message), name);
      const convert = await waitForTask(agent, (await agent.client.convertImage({ ...ref(name), format: "qcow2" }, ref(`out-${name}`), "raw")).id);
      assert.equal(convert.state, "failed", `convert ${name}`);
      assert.match(convert.message ?? "", /not an image in this host's storage folders/);
      assert.equal(fs.existsSync(file(`out-${name}`)), false, "nothing written");
    }
    const listed = (await agent.client.images()).find((i) => i.file === "evil-host.qcow2");
    assert.ok(listed && "error" in listed, "the list shows it, with the refusal");
    assert.match(listed.error, /not an image in this host's storage folders/);
    // A raw disk whose guest wrote a qcow2 header into it, naming another disk as its base:
    // converted as the raw disk it was registered as, its bytes are copied, not the other disk's.
    execFileSync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x77 0 1M", file("base.qcow2")]);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", "base.qcow2", "-F", "qcow2", file("planted.raw"), "1G"]);
    const task = await agent.client.convertImage({ ...ref("planted.raw"), format: "raw" }, ref("planted-copy.raw"), "raw");
    assert.equal((await waitForTask(agent, task.id)).state, "succeeded");
    const [copy, own] = [fs.readFileSync(file("planted-copy.raw")), fs.readFileSync(file("planted.raw"))];
    assert.deepEqual(copy.subarray(0, own.length), own, "the copy is the raw file's own bytes");
    assert.ok(copy.length < own.length + 512 && copy.subarray(own.length).every((b) => b === 0), "then at most a sector's padding, not the 1 GiB disk the header claims");
    // Listed as the raw disk it was registered as, its facts are the raw file's; only unregistered files are probed.
    const probed = (await agent.client.images()).find((i) => i.file === "planted.raw");
    assert.ok(probed && !("error" in probed) && probed.format === "qcow2" && probed.backing[0] === "base.qcow2", "probed, it passes for a clone of base.qcow2");
    const asRegistered = (await agent.client.images([disk("planted.raw")])).find((i) => i.file === "planted.raw");
    assert.ok(asRegistered && !("error" in asRegistered), JSON.stringify(asRegistered));
    assert.equal(asRegistered.format, "raw");
    assert.deepEqual(asRegistered.backing, []);
    assert.equal(asRegistered.virtualBytes, Math.ceil(own.length / 512) * 512, "the file's own size (in whole sectors), not the 1 GiB the header claims");
    const single = await agent.client.image(disk("planted.raw"));
    assert.deepEqual([single.format, single.backing], ["raw", []]);
    // ISOs are not disk images: no disk operation reaches the ISO folder.
    await assert.rejects(agent.client.deleteImage({ pool: "isos", file: "demo.iso" }), isCode("invalid-input"));
    await assert.rejects(agent.client.image({ pool: "isos", file: "demo.iso" }), isCode("invalid-input"));
    assert.ok(fs.existsSync(path.join(agent.dataDir, "images", "demo.iso")), "the ISO is still there");
    for (const name of ["base.qcow2", "clone.qcow2", "via-link.qcow2", "planted.raw", "planted-copy.raw", ...hostile.map(([n]) => n)]) fs.rmSync(file(name), { force: true });
  });

  test("images keeping their data in other files are refused before qemu-img opens them; single-file VMDKs are taken", async () => {
    const hostFile = path.join(agent.dataDir, "host-secret.bin");
    // A qcow2 whose external data file is the host file (made first: qemu-img create makes the data file too).
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-o", `data_file=${hostFile},data_file_raw=on`, file("datafile.qcow2"), "1M"]);
    fs.writeFileSync(hostFile, Buffer.alloc(1024 * 1024, "host secret "));
    const before = fs.readFileSync(hostFile);
    // A VMDK text descriptor whose extent is the host file, laid out the way QEMU probes it and with comments first.
    fs.writeFileSync(file("flat.vmdk"), `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 2048 FLAT "${hostFile}" 0\n`);
    // A binary VMDK of capacity 0 whose header points at a descriptor inside it: QEMU reads that descriptor's extents.
    const embedded = Buffer.alloc(1024);
    embedded.write("KDMV", 0, "latin1");
    embedded.writeUInt32LE(1, 4);
    embedded.writeBigUInt64LE(1n, 28); // the descriptor at sector 1
    embedded.writeBigUInt64LE(1n, 36);
    embedded.write(`createType="monolithicFlat"\nRW 2048 FLAT "${hostFile}" 0\n`, 512, "latin1");
    fs.writeFileSync(file("embedded.vmdk"), embedded);
    for (const [name, why] of [
      ["flat.vmdk", /is a VMDK descriptor, which names other files/],
      ["embedded.vmdk", /is a VMDK descriptor, which names other files/],
      ["datafile.qcow2", /keeps its data in another file/],
    ] as const) {
      await assert.rejects(agent.client.image(ref(name)), (err: Error & { code?: string }) => err.code === "invalid-input" && why.test(err.message), name);
      const convert = await waitForTask(agent, (await agent.client.convertImage({ ...ref(name), format: name.endsWith(".vmdk") ? "vmdk" : "qcow2" }, ref(`out-${name}.raw`), "raw")).id);
      assert.equal(convert.state, "failed", `convert ${name}`);
      assert.match(convert.message ?? "", why);
      assert.equal(fs.existsSync(file(`out-${name}.raw`)), false, "nothing written");
    }
    assert.ok(fs.readFileSync(hostFile).equals(before), "the host file is untouched");
    // What VMware and VirtualBox export: one file holding its own data.
    for (const subformat of ["monolithicSparse", "streamOptimized"]) {
      execFileSync("qemu-img", ["create", "-q", "-f", "vmdk", "-o", `subformat=${subformat}`, file(`${subformat}.vmdk`), "64M"]);
      const info = await agent.client.image(ref(`${subformat}.vmdk`));
      assert.equal(info.format, "vmdk", subformat);
      assert.equal(info.virtualBytes, 64 * MiB);
    }
    for (const name of ["flat.vmdk", "embedded.vmdk", "datafile.qcow2", "monolithicSparse.vmdk", "streamOptimized.vmdk"]) fs.rmSync(file(name));
    fs.rmSync(hostFile);
  });

  test("an encrypted image: LUKS inside qcow2, the passphrase in a 0600 file, never in a log", async () => {
    const secret = "correct horse battery staple";
    const info = await agent.client.createImage({ ...ref("enc.qcow2"), format: "qcow2", bytes: GiB, volume: "volenc000001", passphrase: secret });
    assert.equal(info.encrypted, true);
    assert.equal(qemuInfo("enc.qcow2")["format-specific"].data.encrypt.format, "luks");
    const keyFile = path.join(agent.dataDir, "secrets", "volenc000001.key");
    assert.equal(fs.readFileSync(keyFile, "utf8"), secret);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    // It opens with its secret (resize goes through --image-opts with the key) …
    const grown = await agent.client.resizeImage(disk("enc.qcow2"), 2 * GiB, false, "volenc000001");
    assert.equal(grown.virtualBytes, 2 * GiB);
    // … and not without it.
    assert.throws(() => execFileSync("qemu-io", ["-c", "read 0 512", file("enc.qcow2")], { stdio: "pipe" }));
    assert.ok(!agent.output().includes(secret), "the passphrase is not in the agent's output");
    await assert.rejects(
      agent.client.createImage({ ...ref("enc.raw"), format: "raw", bytes: GiB, volume: "volenc000002", passphrase: secret }),
      /Only qcow2/,
    );
    await agent.client.deleteImage(ref("enc.qcow2"), "volenc000001");
    assert.equal(fs.existsSync(keyFile), false, "deleting the image removes its passphrase");
  });

  test("resize: grow offline; shrinking needs confirmation", async () => {
    const grown = await agent.client.resizeImage(disk("a.qcow2"), 20 * GiB, false);
    assert.equal(grown.virtualBytes, 20 * GiB);
    assert.equal(qemuInfo("a.qcow2")["virtual-size"], 20 * GiB);
    await assert.rejects(agent.client.resizeImage(disk("b.raw"), 256 * MiB, false), /smaller than the disk/);
    assert.equal(fs.statSync(file("b.raw")).size, 512 * MiB);
    const shrunk = await agent.client.resizeImage(disk("b.raw"), 256 * MiB, true);
    assert.equal(shrunk.virtualBytes, 256 * MiB);
    qemuCheck("a.qcow2");
  });

  test("snapshots offline: create, list, revert restores the data, delete", async () => {
    const io = (cmd: string) => execFileSync("qemu-io", ["-f", "qcow2", "-c", cmd, file("a.qcow2")], { encoding: "utf8" });
    io("write -P 0x11 0 1M");
    let info = await agent.client.snapshot(disk("a.qcow2"), "create", "before");
    assert.deepEqual(info.snapshots.map((s) => s.name), ["before"]);
    assert.equal(info.snapshots[0]!.vmStateBytes, 0, "an offline snapshot has no memory state");
    io("write -P 0x22 0 1M");
    await assert.rejects(agent.client.snapshot(disk("a.qcow2"), "create", "before"), isCode("conflict"));
    info = await agent.client.snapshot(disk("a.qcow2"), "revert", "before");
    assert.doesNotMatch(io("read -P 0x11 0 1M"), /verification failed/, "reverting brought the first pattern back");
    info = await agent.client.snapshot(disk("a.qcow2"), "delete", "before");
    assert.deepEqual(info.snapshots, []);
    assert.deepEqual(qemuInfo("a.qcow2").snapshots ?? [], []);
    await assert.rejects(agent.client.snapshot(disk("b.raw"), "create", "x"), /Only qcow2/);
    qemuCheck("a.qcow2");
  });

  test("convert to every format with progress, and back, keeps the contents", async () => {
    execFileSync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 4M 2M", file("a.qcow2")]);
    for (const [format, name] of [["raw", "c.raw"], ["vmdk", "c.vmdk"], ["vdi", "c.vdi"], ["vpc", "c.vhd"]] as const) {
      const started = await agent.client.convertImage({ ...ref("a.qcow2"), format: "qcow2" }, ref(name), format);
      assert.equal(started.state, "running");
      const done = await waitForTask(agent, started.id);
      assert.equal(done.state, "succeeded", done.message ?? "");
      assert.equal(done.progress, 1);
      assert.equal(qemuInfo(name).format, format);
    }
    // vpc rounds sizes to its geometry; the others keep the exact size.
    for (const name of ["c.raw", "c.vmdk", "c.vdi"]) assert.equal(qemuInfo(name)["virtual-size"], 20 * GiB, name);
    const back = await agent.client.convertImage({ ...ref("c.vmdk"), format: "vmdk" }, ref("d.qcow2"), "qcow2");
    assert.equal((await waitForTask(agent, back.id)).state, "succeeded");
    execFileSync("qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", file("a.qcow2"), file("d.qcow2")]);
    qemuCheck("d.qcow2");
  });

  test("a running convert is heard from at least once a second, even when stuck, and can be cancelled, leaving nothing", async () => {
    // 512 MiB of random data (nothing for qemu-img to skip): slow enough to watch and to cancel.
    const src = file("big.raw");
    const fd = fs.openSync(src, "w");
    for (let i = 0; i < 8; i++) fs.writeSync(fd, randomBytes(64 * MiB));
    fs.closeSync(fd);
    const seen: TaskStatus[] = [];
    const stream = agent.client.events(() => {}, undefined, (t) => seen.push(t));
    try {
      const task = await agent.client.convertImage({ ...ref("big.raw"), format: "raw" }, ref("big.qcow2"), "qcow2");
      // qemu-img is asked for its progress four times a second: a fraction arrives mid-way.
      await waitFor("a progress report between 0 and 1", () => seen.some((t) => t.id === task.id && (t.progress ?? 0) > 0 && (t.progress ?? 1) < 1), 20_000, 10);
      // Hold qemu-img still so the cancel cannot lose a race with a fast disk.
      const pid = await holdQemuImg("big.qcow2");
      const before = seen.filter((t) => t.id === task.id).length;
      await new Promise((r) => setTimeout(r, 2500));
      const during = seen.filter((t) => t.id === task.id && t.state === "running").length - before;
      assert.ok(during >= 2, `${during} updates in 2.5 s while qemu-img was stopped`);
      await agent.client.cancelTask(task.id);
      process.kill(pid, "SIGCONT");
      const done = await waitForTask(agent, task.id);
      assert.equal(done.state, "cancelled");
      assert.equal(fs.existsSync(file("big.qcow2")), false, "the half-written output is gone");
    } finally {
      stream.close();
    }
  });

  test("two operations on one image at once: the second is refused, not interleaved", async () => {
    const first = await agent.client.convertImage({ ...ref("big.raw"), format: "raw" }, ref("big2.qcow2"), "qcow2");
    const pid = await holdQemuImg("big2.qcow2");
    await assert.rejects(agent.client.resizeImage(disk("big.raw"), GiB, false), (err: Error & { code?: string }) => err.code === "conflict" && /busy/.test(err.message));
    await assert.rejects(agent.client.convertImage({ ...ref("big.raw"), format: "raw" }, ref("big3.qcow2"), "qcow2"), isCode("conflict"));
    process.kill(pid, "SIGCONT");
    assert.equal((await waitForTask(agent, first.id)).state, "succeeded");
    assert.equal(fs.existsSync(file("big3.qcow2")), false);
    execFileSync("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", file("big.raw"), file("big2.qcow2")]);
  });

  test("a corrupt or foreign image gives qemu-img's reason in plain words", async () => {
    fs.writeFileSync(file("junk.qcow2"), Buffer.concat([Buffer.from("QFI\xfb", "latin1"), randomBytes(4096)]));
    await assert.rejects(agent.client.image(ref("junk.qcow2")), (err: Error & { code?: string }) => {
      assert.equal(err.code, "qemu-failed");
      assert.ok(!err.message.includes(agent.dataDir), `no host path in "${err.message}"`);
      return /qcow2|header|image/i.test(err.message);
    });
    const check = await agent.client.checkImage(disk("a.qcow2"));
    assert.equal(check.ok, true);
    assert.match(check.report, /No errors/);
  });

  test("upload: streamed with its SHA-256, resumed after a break, cancelled, refused when too large", async () => {
    const data = randomBytes(3 * MiB + 123);
    const sha = createHash("sha256").update(data).digest("hex");
    // A first attempt that breaks after 1 MiB keeps its part for resuming.
    const broken = new Readable({ read() {} });
    broken.push(data.subarray(0, MiB));
    const attempt = assert.rejects(agent.client.upload(ref("up.raw"), broken, data.length, 0));
    await waitFor("the first MiB on disk", () => fs.existsSync(file("up.raw.part")) && fs.statSync(file("up.raw.part")).size === MiB, 10_000);
    broken.destroy(new Error("the browser went away"));
    await attempt;
    await waitFor("the agent to let go", async () => (await agent.client.tasks()).every((t) => t.state !== "running"), 10_000);
    assert.equal(await agent.client.uploadOffset(ref("up.raw")), MiB);
    const done = await agent.client.upload(ref("up.raw"), Readable.from([data.subarray(MiB)]), data.length, MiB);
    assert.equal(done.sha256, sha, "the hash covers the whole file across the resume");
    assert.equal(done.format, "raw");
    assert.deepEqual(fs.readFileSync(file("up.raw")), data);
    assert.equal(fs.existsSync(file("up.raw.part")), false);

    // A cancelled upload leaves nothing.
    const slow = new Readable({ read() {} });
    slow.push(randomBytes(MiB));
    const cancelled = assert.rejects(agent.client.upload(ref("gone.raw"), slow, 8 * MiB, 0));
    await waitFor("the upload to start", () => fs.existsSync(file("gone.raw.part")), 10_000);
    await agent.client.cancelUpload(ref("gone.raw"));
    await cancelled;
    assert.equal(fs.existsSync(file("gone.raw.part")), false);
    assert.equal(fs.existsSync(file("gone.raw")), false);

    // Over the limit: refused before a byte is written.
    await assert.rejects(agent.client.upload(ref("huge.raw"), Readable.from([Buffer.alloc(10)]), 2 ** 50, 0), isCode("too-large"));
    assert.equal(fs.existsSync(file("huge.raw.part")), false);
    // ISOs go to the ISO folder and must be named .iso.
    const iso = await agent.client.upload({ pool: "isos", file: "tiny.iso" }, Readable.from([Buffer.alloc(4096)]), 4096, 0);
    assert.equal(iso.format, "iso");
    assert.ok((await agent.client.host()).isos.some((i) => i.name === "tiny.iso"));
    await assert.rejects(agent.client.upload({ pool: "isos", file: "tiny.img" }, Readable.from([Buffer.alloc(1)]), 1, 0), /\.iso/);
  });

  test("delete removes the file; the list shows every image with its facts", async () => {
    const list = await agent.client.images();
    const a = list.find((i) => i.file === "a.qcow2");
    assert.ok(a && "format" in a && a.format === "qcow2" && a.virtualBytes === 20 * GiB);
    const junk = list.find((i) => i.file === "junk.qcow2");
    assert.ok(junk && "error" in junk, "an unreadable image is listed with its reason");
    await agent.client.deleteImage(ref("d.qcow2"));
    assert.equal(fs.existsSync(file("d.qcow2")), false);
  });
});

describe("an encrypted image on a host with a coarse CPU clock", () => {
  let agent: TestAgent;
  let dir: string;
  /** A qemu-img that fails the first `failures` LUKS creations with `message` (by default as its key-derivation timing does), then runs the real one. */
  const coarseClock = (failures: number, message = "Unable to get accurate CPU usage") => {
    const real = execFileSync("sh", ["-c", "command -v qemu-img"], { encoding: "utf8" }).trim();
    fs.writeFileSync(
      path.join(dir, "bin", "qemu-img"),
      `#!/bin/sh
case " $* " in
  *encrypt.format=luks*)
    n=$(cat "${dir}/tries" 2>/dev/null || echo 0); n=$((n + 1)); echo $n >"${dir}/tries"
    if [ $n -le ${failures} ]; then echo "qemu-img: ${dir}/x: ${message}" >&2; exit 1; fi ;;
esac
exec ${real} "$@"
`,
      { mode: 0o755 },
    );
    fs.rmSync(path.join(dir, "tries"), { force: true });
  };
  const tries = () => Number(fs.readFileSync(path.join(dir, "tries"), "utf8"));

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-coarse-"));
    fs.mkdirSync(path.join(dir, "bin"));
    coarseClock(0);
    agent = await startTestAgent({ PATH: `${path.join(dir, "bin")}:${process.env.PATH}` });
  });
  after(async () => {
    await agent?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("qemu-img's failed timing of the key derivation is tried again, and the image is made", async () => {
    coarseClock(2);
    const info = await agent.client.createImage({ pool: "default", file: "coarse.qcow2", format: "qcow2", bytes: GiB, volume: "volcoarse001", passphrase: "a passphrase of some length" });
    assert.equal(info.encrypted, true);
    // Two failures of the stand-in, then the real qemu-img (which on this very host may fail the same way now and then).
    assert.ok(tries() >= 3, `tried ${tries()} times`);
    const task = (await agent.client.tasks()).find((t) => t.title.includes("coarse.qcow2"));
    assert.ok(task?.log.some((l) => /trying again \(3 of 6\)/.test(l)), `the task's log says it tried again: ${JSON.stringify(task?.log)}`);
  });

  test("after six failures it gives up with qemu-img's reason, and leaves no file or passphrase", async () => {
    coarseClock(6);
    await assert.rejects(
      agent.client.createImage({ pool: "default", file: "never.qcow2", format: "qcow2", bytes: GiB, volume: "volcoarse002", passphrase: "a passphrase of some length" }),
      /Unable to get accurate CPU usage/,
    );
    assert.equal(tries(), 6);
    assert.equal(fs.existsSync(path.join(agent.dataDir, "disks", "never.qcow2")), false);
    assert.equal(fs.existsSync(path.join(agent.dataDir, "secrets", "volcoarse002.key")), false);
  });

  test("other failures are not tried again", async () => {
    coarseClock(1, "Could not write image: Input/output error");
    await assert.rejects(
      agent.client.createImage({ pool: "default", file: "broken.qcow2", format: "qcow2", bytes: GiB, volume: "volcoarse003", passphrase: "a passphrase of some length" }),
      /Input\/output error/,
    );
    assert.equal(tries(), 1, "one try only");
  });
});

describe("a full storage folder", () => {
  let agent: TestAgent | undefined;
  let small: TestTmpfs;
  let mountPoint: string;

  before(async () => {
    small = mountTmpfs("24m");
    mountPoint = small.dir;
    if (small.mounted) agent = await startTestAgent({ GUESTHOUSE_STORAGE: `small=${mountPoint}` });
  });
  after(async () => {
    await agent?.cleanup();
    small.cleanup();
  });

  test("two uploads that each fit alone but not together: the second is refused at once, the first completes", async (t) => {
    if (!agent) return t.skip("cannot mount a tmpfs here (needs root): the full-disk case is untested on this machine");
    const a = agent;
    // 24 MiB folder: the first upload announces 16 MiB and is held after its first MiB.
    const first = new Readable({ read() {} });
    first.push(randomBytes(MiB));
    const firstDone = a.client.upload({ pool: "small", file: "first.raw" }, first, 16 * MiB, 0);
    await waitFor("the first upload to start", () => fs.existsSync(path.join(mountPoint, "first.raw.part")), 10_000);

    // 12 MiB would fit in what is free on disk now, but not in what the first still needs.
    assert.ok(fs.statfsSync(mountPoint).bavail * fs.statfsSync(mountPoint).bsize > 12 * MiB, "the disk alone has room");
    const second = new Readable({ read() {} });
    second.push(null);
    await assert.rejects(
      a.client.upload({ pool: "small", file: "second.raw" }, second, 12 * MiB, 0),
      (err: Error & { code?: string }) => err.code === "too-large" && /uploads running into it/.test(err.message),
    );
    assert.ok(!fs.existsSync(path.join(mountPoint, "second.raw.part")), "the refused upload left no part");

    for (let i = 0; i < 15; i++) first.push(randomBytes(MiB));
    first.push(null);
    assert.equal((await firstDone).sizeBytes, 16 * MiB);
    assert.equal(fs.statSync(path.join(mountPoint, "first.raw")).size, 16 * MiB);

    // Once it has landed the space is the disk's own again: 4 MiB fits, the reservation is gone.
    const third = Readable.from([randomBytes(4 * MiB)]);
    assert.equal((await a.client.upload({ pool: "small", file: "third.raw" }, third, 4 * MiB, 0)).sizeBytes, 4 * MiB);
    for (const f of ["first.raw", "third.raw"]) await a.client.deleteImage({ pool: "small", file: f });
    assert.deepEqual(fs.readdirSync(mountPoint), []);
  });

  test("convert and upload into a full folder fail clearly and leave no partial file", async (t) => {
    if (!agent) return t.skip("cannot mount a tmpfs here (needs root): the full-disk case is untested on this machine");
    const a = agent;
    // 40 MiB of random data in the default folder; the small folder has 24 MiB.
    fs.writeFileSync(path.join(a.dataDir, "disks", "src.raw"), randomBytes(40 * MiB));
    const task = await a.client.convertImage({ pool: "default", file: "src.raw", format: "raw" }, { pool: "small", file: "out.qcow2" }, "qcow2");
    const done = await waitForTask(a, task.id);
    assert.equal(done.state, "failed");
    assert.match(done.message ?? "", /full|No space/i);
    assert.deepEqual(fs.readdirSync(mountPoint), [], "no partial output");

    // The upload announces 16 MiB, which fits when it starts; then something else takes
    // 12 MiB of the folder and the upload runs out of space on the way.
    const body = new Readable({ read() {} });
    body.push(randomBytes(2 * MiB));
    const upload = assert.rejects(
      a.client.upload({ pool: "small", file: "up.raw" }, body, 16 * MiB, 0),
      (err: Error & { code?: string }) => err.code === "too-large" && /filled up/.test(err.message),
    );
    await waitFor("the upload to start", () => fs.existsSync(path.join(mountPoint, "up.raw.part")), 10_000);
    fs.writeFileSync(path.join(mountPoint, "filler"), Buffer.alloc(12 * MiB));
    for (let i = 0; i < 14; i++) body.push(randomBytes(MiB));
    body.push(null);
    await upload;
    await waitFor("the part to be removed", () => !fs.existsSync(path.join(mountPoint, "up.raw.part")), 10_000);

    assert.deepEqual(fs.readdirSync(mountPoint), ["filler"], "no partial upload");

    // Creating a qcow2 in a folder with no space left fails and leaves no file.
    const fd = fs.openSync(path.join(mountPoint, "rest"), "w");
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(64 * 1024));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
    } finally {
      fs.closeSync(fd);
    }
    await assert.rejects(
      a.client.createImage({ pool: "small", file: "new.qcow2", format: "qcow2", bytes: GiB, volume: "volfull000001" }),
      (err: Error & { code?: string }) => /full|No space/i.test(err.message),
    );
    assert.deepEqual(fs.readdirSync(mountPoint).sort(), ["filler", "rest"], "no partial image");
  });

  test("a full clone, a linked clone and a snapshot in a full folder fail clearly; nothing partial is left, the source checks clean and holds the same data", async (t) => {
    if (!agent) return t.skip("cannot mount a tmpfs here (needs root): the full-disk case is untested on this machine");
    const a = agent;
    for (const f of fs.readdirSync(mountPoint)) fs.rmSync(path.join(mountPoint, f));
    // A qcow2 with 8 MiB of data in the 24 MiB folder, then the folder filled to its last byte.
    const raw = path.join(a.dataDir, "eight.raw");
    fs.writeFileSync(raw, randomBytes(8 * MiB));
    execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, path.join(mountPoint, "src.qcow2")]);
    const fd = fs.openSync(path.join(mountPoint, "rest"), "w");
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(4096));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
    } finally {
      fs.closeSync(fd);
    }
    const src = { pool: "small", file: "src.qcow2", format: "qcow2" as const };
    await assert.rejects(a.client.cloneImage(src, { pool: "small", file: "full.qcow2" }, "full"), (err: Error) => /is full \(small\/full\.qcow2: .*No space/.test(err.message));
    await assert.rejects(a.client.cloneImage(src, { pool: "small", file: "linked.qcow2" }, "linked"), (err: Error) => /full|No space/i.test(err.message));
    await assert.rejects(a.client.snapshot(src, "create", "full-folder"), (err: Error) => /full|No space/i.test(err.message));
    assert.deepEqual(fs.readdirSync(mountPoint).sort(), ["rest", "src.qcow2"], "no partial clone");
    assert.equal((await a.client.checkImage(src)).ok, true, "the source checks clean");
    assert.deepEqual((await a.client.image(src)).snapshots, [], "no half-made snapshot");
    // Its bytes may move (a failed snapshot's refcount updates), its contents may not.
    execFileSync("qemu-img", ["compare", "-q", "-f", "qcow2", "-F", "raw", path.join(mountPoint, "src.qcow2"), raw]);
    fs.rmSync(raw);
  });
});

describe("interrupted uploads expire; qemu-img jobs queue", () => {
  let agent: TestAgent;
  /** 0.001 h: a part not written for 3.6 s goes; the agent looks every second. */
  const PART_MS = 3600;

  before(async () => {
    agent = await startTestAgent({ GUESTHOUSE_UPLOAD_PART_HOURS: "0.001", GUESTHOUSE_QEMU_IMG_JOBS: "1" });
  });
  after(() => agent.cleanup());

  test("a part nobody resumes is listed with its expiry and removed then; one an upload holds is not", async () => {
    const partOf = (file: string) => path.join(agent.dataDir, "disks", `${file}.part`);
    // "held" first: it is the older part, so the sweep that removes "broken" has passed it expired.
    const held = new Readable({ read() {} });
    held.push(randomBytes(MiB));
    const heldDone = agent.client.upload({ pool: "default", file: "held.raw" }, held, 3 * MiB, 0);
    await waitFor("the held upload to write", () => fs.existsSync(partOf("held.raw")) && fs.statSync(partOf("held.raw")).size === MiB, 10_000);

    const broken = new Readable({ read() {} });
    broken.push(randomBytes(MiB));
    const brokenDone = assert.rejects(agent.client.upload({ pool: "default", file: "broken.raw" }, broken, 3 * MiB, 0));
    await waitFor("the broken upload to write", () => fs.existsSync(partOf("broken.raw")) && fs.statSync(partOf("broken.raw")).size === MiB, 10_000);
    broken.destroy(new Error("the browser went away"));
    await brokenDone;
    await waitFor("the broken upload to end", async () => !(await agent.client.uploadParts()).find((p) => p.file === "broken.raw")?.uploading, 10_000);

    const parts = await agent.client.uploadParts();
    assert.deepEqual(parts.map((p) => [p.file, p.bytes, p.uploading]), [["held.raw", MiB, true], ["broken.raw", MiB, false]]);
    for (const p of parts) assert.equal(p.expiresAt - p.modifiedAt, PART_MS);

    await waitFor("the broken part to be removed", () => !fs.existsSync(partOf("broken.raw")), 20_000, 50);
    assert.ok(Date.now() > parts[0]!.expiresAt, "the held part was past its time at that sweep");
    assert.ok(fs.existsSync(partOf("held.raw")), "the part an upload holds stays");
    // The agent says so once the sweep is done, just after the file went (its output arrives through a pipe).
    await waitFor("the agent to say it removed the part", () => /removed the interrupted upload default\/broken\.raw \(not resumed in time\)/.test(agent.output()), 5_000, 50);
    assert.deepEqual((await agent.client.uploadParts()).map((p) => p.file), ["held.raw"]);
    assert.equal(await agent.client.uploadOffset({ pool: "default", file: "broken.raw" }), 0, "nothing left to resume");

    held.push(randomBytes(2 * MiB));
    held.push(null);
    assert.equal((await heldDone).sizeBytes, 3 * MiB);
    assert.deepEqual(await agent.client.uploadParts(), []);
    await agent.client.deleteImage({ pool: "default", file: "held.raw" });
  });

  test("with one qemu-img job allowed, a second conversion waits its turn, says so, and runs after", async () => {
    const disks = path.join(agent.dataDir, "disks");
    fs.writeFileSync(path.join(disks, "q1.raw"), randomBytes(8 * MiB));
    fs.writeFileSync(path.join(disks, "q2.raw"), randomBytes(8 * MiB));
    const first = await agent.client.convertImage({ pool: "default", file: "q1.raw", format: "raw" }, { pool: "default", file: "q1.qcow2" }, "qcow2");
    const pid = await holdQemuImg("q1.qcow2");
    try {
      const second = await agent.client.convertImage({ pool: "default", file: "q2.raw", format: "raw" }, { pool: "default", file: "q2.qcow2" }, "qcow2");
      // It checks its source and reserves its name first, then asks for a slot.
      const waiting = await waitFor("the second to wait for a slot", async () => {
        const t = await agent.client.task(second.id);
        return t.message?.startsWith("Waiting") ? t : null;
      }, 10_000);
      assert.equal(waiting.state, "running");
      assert.equal(waiting.message, "Waiting for a qemu-img slot: next in line (this host runs 1 at once).");
      assert.deepEqual(qemuImgConverting(agent.dataDir), [pid], "one qemu-img runs: the first");
      // Its temporary (`.q2.qcow2.<task>.new`) is there, empty; the name itself is not taken yet.
      const temps = fs.readdirSync(disks).filter((f) => f.startsWith(`.q2.qcow2.${second.id}.`));
      assert.equal(temps.length, 1);
      assert.equal(fs.statSync(path.join(disks, temps[0]!)).size, 0, "the second has written nothing");
      assert.equal(fs.existsSync(path.join(disks, "q2.qcow2")), false);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    assert.equal((await waitForTask(agent, first.id)).state, "succeeded");
    const tasks = (await agent.client.tasks()).filter((t) => t.kind === "convert");
    const second = tasks.find((t) => t.id !== first.id)!;
    const done = await waitForTask(agent, second.id);
    assert.equal(done.state, "succeeded");
    assert.equal(done.message, "wrote q2.qcow2", "its result replaced the waiting note");
    for (const f of ["q1", "q2"]) {
      execFileSync("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", path.join(disks, `${f}.raw`), path.join(disks, `${f}.qcow2`)]);
    }
  });
});

/** Pids of qemu-img convert processes running now on files under `dir`. */
function qemuImgConverting(dir: string): number[] {
  return fs
    .readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      const cmdline = safeRead(`/proc/${e}/cmdline`);
      return cmdline.startsWith("qemu-img\0convert") && cmdline.includes(dir);
    })
    .map(Number);
}

/** Stops (SIGSTOP) the qemu-img writing `output` and returns its pid; SIGCONT lets it go on. */
async function holdQemuImg(output: string): Promise<number> {
  const pid = await waitFor(`qemu-img writing ${output}`, () => {
    for (const entry of fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
      const cmdline = safeRead(`/proc/${entry}/cmdline`);
      // The agent writes a new image under a temporary name of its task's (`.<name>.<task>.new`).
      if (cmdline.startsWith("qemu-img\0convert") && cmdline.includes(`/.${output}.t`)) return Number(entry);
    }
    return 0;
  }, 10_000, 5);
  process.kill(pid, "SIGSTOP");
  return pid;
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

async function waitForTask(agent: TestAgent, id: string, timeoutMs = 60_000): Promise<TaskStatus> {
  let last: TaskStatus | null = null;
  await waitFor(`task ${id} to finish`, async () => {
    last = await agent.client.task(id);
    return last.state !== "running";
  }, timeoutMs);
  return last!;
}
