/**
 * Browser uploads through the real web server (`/upload/<pool>/<file>`) to a real
 * agent: refusals (no session, a foreign Origin, hostile names, names in use, over the
 * agent's limit), real uploads (a qcow2 made by qemu-img, a raw file, an ISO) checked
 * against the database rows and the files, an upload broken off and resumed, and
 * cancelling (after an interruption and while the body is still coming).
 *
 * The bodies are sent with node:http so the test controls every byte and header: how
 * much is sent, when the connection breaks, which Origin is claimed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createSession, SESSION_COOKIE } from "../../server/auth/sessions";
import { DEMO_ISO, waitFor, within } from "../helpers/agent";
import { startTestStack, type TestStack } from "../helpers/web";

const MiB = 2 ** 20;
/** The agent refuses uploads over this (startTestStack passes our environment on to it). */
const LIMIT = 32 * MiB;
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
/** QEMU reports a file's virtual size in whole 512-byte sectors. */
const sectors = (bytes: number) => BigInt(Math.ceil(bytes / 512) * 512);

interface Answer {
  status: number;
  json: Record<string, unknown> | null;
}

describe("browser uploads through the web server", () => {
  let stack: TestStack;
  let cookie = "";
  let memberCookie = "";
  let viewerCookie = "";
  let memberTeam = "";
  let origin = "";
  let scratch = "";
  const db = () => stack.database.db;
  const disksDir = () => path.join(stack.agent.dataDir, "disks");
  const isoDir = () => path.join(stack.agent.dataDir, "images");
  const filesIn = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

  /** Request options with the path sent exactly as written (a URL would resolve "..", "%2e%2e"). */
  const at = (target: string, method: string, headers: Record<string, string>): http.RequestOptions => ({
    host: "127.0.0.1",
    port: stack.port,
    path: target,
    method,
    headers,
  });

  /** One request with the admin's session and this origin unless told otherwise. */
  function send(
    method: string,
    target: string,
    opts: { cookie?: string | null; origin?: string | null; body?: Buffer; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...opts.headers };
      const c = opts.cookie === undefined ? cookie : opts.cookie;
      const o = opts.origin === undefined ? origin : opts.origin;
      if (c) headers.cookie = c;
      if (o) headers.origin = o;
      if (opts.body && !("content-length" in headers)) headers["content-length"] = String(opts.body.length);
      const req = http.request(at(target, method, headers), (res) => collect(res).then(resolve, reject));
      req.on("error", reject);
      req.end(opts.body);
    });
  }

  function collect(res: http.IncomingMessage): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as Record<string, unknown>) : null });
      });
    });
  }

  /** A PUT whose body the test writes itself: the headers go out at once, the bytes when asked. */
  function openPut(target: string, length: number, headers: Record<string, string> = {}) {
    const req = http.request(at(target, "PUT", { cookie, origin, "content-length": String(length), ...headers }));
    const answer = new Promise<Answer>((resolve, reject) => {
      req.on("response", (res) => collect(res).then(resolve, reject));
      req.on("error", reject);
    });
    answer.catch(() => {}); // a test that breaks the connection does not wait for an answer
    req.flushHeaders();
    const write = (data: Buffer) => new Promise<void>((resolve) => (req.write(data) ? resolve() : req.once("drain", resolve)));
    return { req, answer, write };
  }

  const upload = (pool: string, file: string, data: Buffer, offset = 0, opts: Parameters<typeof send>[2] = {}) =>
    send("PUT", `/upload/${pool}/${file}?size=${data.length}&offset=${offset}`, { body: data.subarray(offset), ...opts });

  /** The latest upload task of "<pool>/<file>". */
  const taskOf = (target: string) => db().task.findFirst({ where: { kind: "upload", target }, orderBy: { startedAt: "desc" } });

  before(async () => {
    process.env.GUESTHOUSE_UPLOAD_LIMIT = String(LIMIT);
    try {
      stack = await startTestStack();
    } finally {
      delete process.env.GUESTHOUSE_UPLOAD_LIMIT;
    }
    origin = stack.baseUrl;
    const admin = await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    cookie = `${SESSION_COOKIE}=${(await createSession(db(), admin.id)).secret}`;
    const member = await db().user.create({ data: { username: "member", passwordHash: "x", role: "member", teamId: admin.teamId, memberships: { create: { teamId: admin.teamId, role: "member" } } } });
    memberCookie = `${SESSION_COOKIE}=${(await createSession(db(), member.id)).secret}`;
    memberTeam = admin.teamId;
    const viewer = await db().user.create({ data: { username: "viewer", passwordHash: "x", role: "member", teamId: admin.teamId, memberships: { create: { teamId: admin.teamId, role: "viewer" } } } });
    viewerCookie = `${SESSION_COOKIE}=${(await createSession(db(), viewer.id)).secret}`;
    scratch = fs.mkdtempSync(path.join(stack.agent.dataDir, "scratch-"));
  });
  after(async () => {
    await stack?.cleanup();
  });

  test("without a session: 401, and nothing is written", async () => {
    const data = randomBytes(MiB);
    const answer = await upload("default", "anon.raw", data, 0, { cookie: null });
    assert.equal(answer.status, 401);
    assert.match(String(answer.json?.error), /Log in/);
    assert.equal((await send("GET", "/upload/default/anon.raw", { cookie: null })).status, 401);
    assert.equal((await send("DELETE", "/upload/default/anon.raw", { cookie: null })).status, 401);
    const forged = await upload("default", "anon.raw", data, 0, { cookie: `${SESSION_COOKIE}=not-a-session` });
    assert.equal(forged.status, 401);
    assert.deepEqual(filesIn(disksDir()).filter((f) => f.startsWith("anon")), []);
    assert.equal(await db().task.count(), 0, "no task is recorded for a refused request");
  });

  test("from another origin (or none, for a PUT): 403", async () => {
    const data = randomBytes(MiB);
    for (const o of ["http://evil.example", "null", `http://127.0.0.1:${stack.port + 1}`]) {
      const answer = await upload("default", "cross.raw", data, 0, { origin: o });
      assert.equal(answer.status, 403, o);
      assert.match(String(answer.json?.error), /own pages/);
    }
    assert.equal((await upload("default", "cross.raw", data, 0, { origin: null })).status, 403, "a PUT without Origin");
    assert.equal((await send("DELETE", "/upload/default/cross.raw", { origin: "http://evil.example" })).status, 403);
    assert.equal((await send("GET", "/upload/default/cross.raw", { origin: "http://evil.example" })).status, 403);
    assert.equal((await send("GET", "/upload/default/cross.raw", { origin: null, headers: { "sec-fetch-site": "cross-site" } })).status, 403);
    // A same-origin GET carries no Origin in browsers: allowed.
    assert.deepEqual((await send("GET", "/upload/default/cross.raw", { origin: null })).json, { offset: 0, uploading: false });
    assert.deepEqual(filesIn(disksDir()).filter((f) => f.startsWith("cross")), []);
  });

  test("hostile or malformed names and sizes: 400 with a clear message; wrong addresses: 404/405", async () => {
    const data = randomBytes(64 * 1024);
    const outside = filesIn(stack.agent.dataDir);
    for (const [pool, file] of [
      ["default", "..%2Fx"],
      ["default", ".hidden"],
      ["default", "a%2Fb"],
      ["default", "%2e%2e"],
      ["default", "x.part"],
      ["default", "a%20b"],
      ["default", "%E0%A4%A"],
      ["..", "x.raw"],
      ["%2e%2e", "x.raw"],
      ["Default", "x.raw"],
      ["isos", "not-an-iso.raw"],
    ]) {
      const answer = await send("PUT", `/upload/${pool}/${file}?size=${data.length}`, { body: data });
      assert.equal(answer.status, 400, `${pool}/${file}: ${JSON.stringify(answer.json)}`);
      assert.equal(answer.json?.code, "invalid-input");
      assert.ok(String(answer.json?.error).length > 20, `a message that says what is wrong: ${answer.json?.error}`);
      assert.equal((await send("GET", `/upload/${pool}/${file}`)).status, 400, `GET ${pool}/${file}`);
    }
    assert.equal((await send("PUT", `/upload/default/x.raw?size=abc`, { body: data })).status, 400);
    assert.equal((await send("PUT", `/upload/default/x.raw`, { body: data })).status, 400, "no size");
    assert.equal((await send("PUT", `/upload/default/x.raw?size=${data.length + 1}`, { body: data })).status, 400, "Content-Length ≠ size");
    assert.equal((await send("PUT", `/upload/default/x.raw?size=10&offset=11`, { body: Buffer.alloc(0) })).status, 400);
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request(at("/upload/default/x.raw?size=10", "PUT", { cookie, origin }), (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.write(Buffer.alloc(10)); // written before end(): no Content-Length, chunked
      req.end();
    });
    assert.equal(chunked, 411);
    assert.equal((await send("PUT", `/upload/default/x/y?size=1`, { body: Buffer.alloc(1) })).status, 404);
    assert.equal((await send("PUT", `/upload/nosuchpool/x.raw?size=1`, { body: Buffer.alloc(1) })).status, 404);
    assert.equal((await send("POST", `/upload/default/x.raw`)).status, 405);
    assert.deepEqual(filesIn(stack.agent.dataDir), outside, "nothing new next to the storage folders");
    assert.deepEqual(filesIn(disksDir()), []);
  });

  test("an image based on another (a backing file) is refused and removed, whatever it names: it could read a disk that is not its owner's", async () => {
    // The base is someone's disk in the same folder, or a host file; the header names it.
    // The agent refuses both alike, without looking at what the name stands for.
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", path.join(disksDir(), "someones-disk.qcow2"), "1G"]);
    for (const [name, backing, format, why] of [
      ["on-disk.qcow2", "someones-disk.qcow2", "qcow2", /is based on another image \("someones-disk\.qcow2"\)/],
      ["on-host.qcow2", "/etc/hostname", "raw", /is based on another image \("hostname"\)/],
    ] as const) {
      const made = path.join(scratch, name);
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", format, made, "1G"]);
      const answer = await upload("default", name, fs.readFileSync(made));
      assert.equal(answer.status, 400, JSON.stringify(answer.json));
      assert.match(String(answer.json?.error), why);
      assert.match(String(answer.json?.error), /not kept/);
      assert.equal(fs.existsSync(path.join(disksDir(), name)), false, `${name} is not kept`);
      assert.equal(await db().disk.count({ where: { file: name } }), 0);
    }
    fs.rmSync(path.join(disksDir(), "someones-disk.qcow2"));
  });

  test("a VMDK descriptor or a qcow2 with an external data file is refused before qemu-img opens it, and nothing is kept", async () => {
    const made = path.join(scratch, "datafile.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-o", `data_file=${path.join(scratch, "data.bin")},data_file_raw=on`, made, "1M"]);
    for (const [name, body, why] of [
      ["flat.vmdk", Buffer.from('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "/etc/hostname" 0\n'), /is a VMDK descriptor/],
      ["datafile.qcow2", fs.readFileSync(made), /keeps its data in another file/],
    ] as const) {
      const answer = await upload("default", name, body);
      assert.equal(answer.status, 400, JSON.stringify(answer.json));
      assert.match(String(answer.json?.error), why);
      assert.deepEqual(filesIn(disksDir()).filter((f) => f.startsWith(name)), [], `neither ${name} nor its part is kept`);
      assert.equal(await db().disk.count({ where: { file: name } }), 0);
    }
  });

  test("a qcow2 made by qemu-img and a raw file become disks with their SHA-256 and format", async () => {
    const raw = randomBytes(3 * MiB + 12345);
    const source = path.join(scratch, "source.raw");
    fs.writeFileSync(source, raw);
    const qcowFile = path.join(scratch, "made.qcow2");
    execFileSync("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", source, qcowFile]);
    const qcow = fs.readFileSync(qcowFile);
    assert.ok(qcow.length > 3 * MiB);

    const a = await upload("default", "made.qcow2", qcow);
    assert.equal(a.status, 201, JSON.stringify(a.json));
    assert.equal(a.json?.sha256, sha256(qcow));
    assert.equal(a.json?.format, "qcow2");
    assert.equal(a.json?.sizeBytes, qcow.length);
    const disk = await db().disk.findUniqueOrThrow({ where: { id: String(a.json?.diskId) } });
    assert.equal(disk.file, "made.qcow2");
    assert.equal(disk.pool, "default");
    assert.equal(disk.format, "qcow2");
    assert.equal(disk.sha256, sha256(qcow));
    assert.equal(disk.sizeBytes, sectors(raw.length));
    assert.ok(fs.readFileSync(path.join(disksDir(), "made.qcow2")).equals(qcow), "the file on the host is the file sent");
    execFileSync("qemu-img", ["check", "-q", path.join(disksDir(), "made.qcow2")]);

    const b = await upload("default", "plain.img", raw);
    assert.equal(b.status, 201, JSON.stringify(b.json));
    assert.equal(b.json?.format, "raw");
    const plain = await db().disk.findUniqueOrThrow({ where: { id: String(b.json?.diskId) } });
    assert.equal(plain.format, "raw");
    assert.equal(plain.sha256, sha256(raw));
    assert.equal(plain.sizeBytes, sectors(raw.length));

    const task = await taskOf("default/made.qcow2");
    assert.ok(task?.id.startsWith("web-"), "the upload is a task of the web's own");
    assert.equal(task?.state, "succeeded");
    assert.equal(task?.progress, 1);
    assert.equal(task?.diskId, disk.id);
    assert.match(String(task?.message), new RegExp(sha256(qcow)));
    assert.ok(task?.userId && task.finishedAt);
    const events = await db().event.findMany({ where: { kind: "upload", ok: true } });
    assert.ok(events.some((e) => e.message.includes("default/made.qcow2")), JSON.stringify(events));
    assert.deepEqual(filesIn(disksDir()), ["made.qcow2", "plain.img"], "no part left behind");

    // The names are taken now: as disks (409 from the web) …
    assert.equal((await upload("default", "made.qcow2", raw)).status, 409);
    assert.equal((await send("GET", "/upload/default/made.qcow2")).status, 409);
    // … and a file on the host without a row is refused by the agent.
    fs.writeFileSync(path.join(disksDir(), "stray.raw"), "x");
    const stray = await upload("default", "stray.raw", raw);
    assert.equal(stray.status, 409);
    assert.equal(fs.readFileSync(path.join(disksDir(), "stray.raw"), "utf8"), "x", "the existing file is untouched");
    fs.rmSync(path.join(disksDir(), "stray.raw"));
  });

  test("an ISO goes to the ISO folder and gets its IsoImage row", async () => {
    const iso = fs.readFileSync(DEMO_ISO);
    const answer = await upload("isos", "uploaded.iso", iso);
    assert.equal(answer.status, 201, JSON.stringify(answer.json));
    assert.equal(answer.json?.format, "iso");
    assert.equal(answer.json?.sha256, sha256(iso));
    const host = await db().host.findUniqueOrThrow({ where: { name: "local" } });
    const row = await db().isoImage.findUniqueOrThrow({ where: { hostId_name: { hostId: host.id, name: "uploaded.iso" } } });
    assert.deepEqual(answer.json?.iso, { id: row.id, name: "uploaded.iso" });
    assert.equal(row.sha256, sha256(iso));
    assert.equal(row.sizeBytes, BigInt(iso.length));
    assert.ok(fs.readFileSync(path.join(isoDir(), "uploaded.iso")).equals(iso));
    assert.ok((await stack.agent.client.host()).isos.some((i) => i.name === "uploaded.iso"), "the agent lists it");
    assert.equal((await upload("isos", "uploaded.iso", iso)).status, 409, "the name is an ISO now");
  });

  test("a VMDK, VDI or VHD upload becomes a qcow2 disk: converted with a task, the same data, and the original goes", async () => {
    const raw = randomBytes(2 * MiB);
    const source = path.join(scratch, "guest.raw");
    fs.writeFileSync(source, raw);
    for (const [format, ext] of [["vmdk", "vmdk"], ["vdi", "vdi"], ["vpc", "vhd"]] as const) {
      const made = path.join(scratch, `from-${format}.${ext}`);
      execFileSync("qemu-img", ["convert", "-q", "-f", "raw", "-O", format, source, made]);
      const answer = await upload("default", `from-${format}.${ext}`, fs.readFileSync(made));
      assert.equal(answer.status, 201, JSON.stringify(answer.json));
      assert.equal(answer.json?.convertedFrom, format);
      assert.equal(answer.json?.file, `from-${format}.qcow2`);
      const row = await waitFor(`the ${format} upload's qcow2 copy to be ready`, async () => {
        const r = await db().disk.findUniqueOrThrow({ where: { id: String(answer.json?.diskId) } });
        return r.state === "ready" ? r : null;
      }, 30_000);
      assert.equal(row.format, "qcow2");
      assert.equal(row.file, `from-${format}.qcow2`);
      const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", path.join(disksDir(), row.file)], { encoding: "utf8" })) as { format: string };
      assert.equal(info.format, "qcow2");
      execFileSync("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", source, path.join(disksDir(), row.file)]); // exit 0: the same data
      await waitFor(`the ${format} original to go`, () => !fs.existsSync(path.join(disksDir(), `from-${format}.${ext}`)), 10_000);
      assert.equal(await db().disk.count({ where: { file: `from-${format}.${ext}` } }), 0, "no row for the original");
    }
  });

  test("an upload whose name another disk took while it arrived (a conversion's pending output) is kept, not removed", async () => {
    const data = randomBytes(2 * MiB);
    const put = openPut(`/upload/default/raced.raw?size=${data.length}&offset=0`, data.length);
    await put.write(data.subarray(0, MiB));
    await waitFor("the upload to start writing", () => fs.existsSync(path.join(disksDir(), "raced.raw.part")), 10_000);
    // As convertDisk does: a pending row for its output, under the name the upload will take.
    const admin = await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const host = await db().host.findUniqueOrThrow({ where: { name: "local" } });
    await db().disk.create({
      data: { volume: "volraced0001", pool: "default", file: "raced.raw", format: "qcow2", state: "pending", sizeBytes: 1n, bus: "virtio", ownerId: admin.id, teamId: admin.teamId, hostId: host.id },
    });
    await put.write(data.subarray(MiB));
    put.req.end();
    const answer = await put.answer;
    assert.equal(answer.status, 409, JSON.stringify(answer.json));
    assert.match(String(answer.json?.error), /another disk took its name meanwhile\. The file is kept on the host/);
    assert.ok(fs.readFileSync(path.join(disksDir(), "raced.raw")).equals(data), "the uploaded file is on the host, whole");
    await db().disk.delete({ where: { volume: "volraced0001" } });
  });

  test("an ISO a member uploads is their team's, with its uploader and SHA-256, not published; a viewer of the team uploads nothing", async () => {
    const iso = fs.readFileSync(DEMO_ISO);
    const before = filesIn(isoDir());
    const put = await upload("isos", "viewers.iso", iso, 0, { cookie: viewerCookie });
    assert.equal(put.status, 403, JSON.stringify(put.json));
    assert.match(String(put.json?.error), /viewer of this team sees its guests but makes none/);
    assert.deepEqual(filesIn(isoDir()), before, "the folder is as it was");
    const member = await upload("isos", "members.iso", iso, 0, { cookie: memberCookie });
    assert.equal(member.status, 201, JSON.stringify(member.json));
    const row = await db().isoImage.findFirstOrThrow({ where: { name: "members.iso" }, include: { uploader: true } });
    assert.deepEqual([row.uploader?.username, row.teamId, row.published, row.sha256], ["member", memberTeam, false, sha256(iso)]);
  });

  test("over the agent's upload limit: 413 at once, before a byte is written", async () => {
    const size = LIMIT + 1;
    const put = openPut(`/upload/default/huge.raw?size=${size}`, size);
    await put.write(randomBytes(MiB)); // the browser starts sending right away
    const answer = await within("the 413", put.answer, 10_000);
    put.req.destroy();
    assert.equal(answer.status, 413);
    assert.equal(answer.json?.code, "too-large");
    assert.match(String(answer.json?.error), /32 MiB/);
    assert.deepEqual(filesIn(disksDir()).filter((f) => f.startsWith("huge")), []);
    const task = await waitFor("the task row to end", async () => {
      const t = await taskOf("default/huge.raw");
      return t?.state === "failed" ? t : null;
    }, 10_000);
    assert.match(String(task.message), /accepts uploads up to/);
    // More than the folder has free is refused by the web before the agent is asked.
    const free = (await stack.agent.client.host()).pools.find((p) => p.name === "default")!.freeBytes;
    const tooBig = openPut(`/upload/default/huge.raw?size=${free + 1}`, free + 1);
    const refused = await within("the refusal", tooBig.answer, 10_000);
    tooBig.req.destroy();
    assert.equal(refused.status, 413);
    assert.match(String(refused.json?.error), /free/);
  });

  test("an upload broken off mid-way keeps its bytes; GET offset and PUT from there end with the whole file's SHA-256", async () => {
    const data = randomBytes(8 * MiB + 777);
    const put = openPut(`/upload/default/resumed.raw?size=${data.length}&offset=0`, data.length);
    // Slowly enough that the task's progress (written at most once a second) is seen moving.
    for (let i = 0; i < 6; i++) {
      await put.write(data.subarray(i * 512 * 1024, (i + 1) * 512 * 1024));
      await new Promise((r) => setTimeout(r, 250));
    }
    const running = await waitFor("progress on the task row", async () => {
      const t = await taskOf("default/resumed.raw");
      return t?.state === "running" && (t.progress ?? 0) > 0 ? t : null;
    }, 5000);
    assert.ok(running.progress! > 0 && running.progress! < 0.5, `progress ${running.progress}`);
    assert.deepEqual((await send("GET", "/upload/default/resumed.raw")).json?.uploading, true);
    put.req.destroy(); // the browser tab closed

    const failed = await waitFor("the task row to end", async () => {
      const t = await taskOf("default/resumed.raw");
      return t?.state !== "running" ? t : null;
    }, 15_000);
    assert.equal(failed.state, "failed");
    assert.match(String(failed.message), /resume/);
    const { json } = await send("GET", "/upload/default/resumed.raw");
    const offset = Number(json?.offset);
    assert.equal(json?.uploading, false);
    assert.ok(offset > 0 && offset <= 3 * MiB, `offset ${offset}`);
    assert.equal(fs.statSync(path.join(disksDir(), "resumed.raw.part")).size, offset);

    // Someone else may not take it over (an admin may).
    assert.equal((await send("GET", "/upload/default/resumed.raw", { cookie: memberCookie })).status, 403);
    assert.equal((await upload("default", "resumed.raw", data, offset, { cookie: memberCookie })).status, 403);
    // Starting over while a part exists, or from a wrong offset, is refused by the agent.
    assert.equal((await upload("default", "resumed.raw", data, 0)).status, 409);
    assert.equal((await upload("default", "resumed.raw", data, offset - 1)).status, 409);

    const resumed = await upload("default", "resumed.raw", data, offset);
    assert.equal(resumed.status, 201, JSON.stringify(resumed.json));
    assert.equal(resumed.json?.sha256, sha256(data));
    assert.equal(resumed.json?.sizeBytes, data.length);
    const disk = await db().disk.findUniqueOrThrow({ where: { id: String(resumed.json?.diskId) } });
    assert.equal(disk.sha256, sha256(data));
    assert.ok(fs.readFileSync(path.join(disksDir(), "resumed.raw")).equals(data));
    assert.ok(!fs.existsSync(path.join(disksDir(), "resumed.raw.part")));
    const task = await taskOf("default/resumed.raw");
    assert.equal(task?.state, "succeeded");
    assert.match(String(task?.log), new RegExp(`resuming from byte ${offset}`));
  });

  test("DELETE cancels: an interrupted upload's part, and an upload still sending", async () => {
    const data = randomBytes(4 * MiB);
    const broken = openPut(`/upload/default/dropped.raw?size=${data.length}`, data.length);
    await broken.write(data.subarray(0, MiB));
    await waitFor("bytes on the host", () => fs.existsSync(path.join(disksDir(), "dropped.raw.part")) && fs.statSync(path.join(disksDir(), "dropped.raw.part")).size > 0, 5000);
    broken.req.destroy();
    await waitFor("the part to be final", async () => (await taskOf("default/dropped.raw"))?.state === "failed", 15_000);
    assert.ok(Number((await send("GET", "/upload/default/dropped.raw")).json?.offset) > 0);
    // The disks page lists it, with who started it and when it goes, to its owner (here an admin) only.
    const page = async (c: string) => (await fetch(`${stack.baseUrl}/disks`, { headers: { cookie: c } })).text();
    const listed = /<li[^>]*data-testid="upload-part" data-file="dropped\.raw"[^]*?<\/li>/.exec(await page(cookie))?.[0] ?? "";
    assert.match(listed, new RegExp(`by ${stack.admin.username}`));
    assert.match(listed, /data-testid="part-expires">removed /);
    assert.doesNotMatch(await page(memberCookie), /data-file="dropped\.raw"/, "a member does not see another's part");
    assert.equal((await send("DELETE", "/upload/default/dropped.raw", { cookie: memberCookie })).status, 403, "not someone else's");
    assert.equal((await send("DELETE", "/upload/default/dropped.raw")).status, 204);
    assert.deepEqual((await send("GET", "/upload/default/dropped.raw")).json, { offset: 0, uploading: false });
    assert.deepEqual(filesIn(disksDir()).filter((f) => f.startsWith("dropped")), []);
    const dropped = await taskOf("default/dropped.raw");
    assert.equal(dropped?.state, "cancelled", "its record no longer offers resuming");

    const live = openPut(`/upload/default/live.raw?size=${data.length}`, data.length);
    await live.write(data.subarray(0, MiB));
    await waitFor("the upload to run", async () => (await send("GET", "/upload/default/live.raw")).json?.uploading === true, 5000);
    assert.equal((await send("DELETE", "/upload/default/live.raw")).status, 204);
    const answer = await within("the answer to the cancelled upload", live.answer, 10_000);
    assert.equal(answer.status, 409);
    assert.match(String(answer.json?.error), /cancelled/);
    live.req.destroy();
    const task = await waitFor("the task row to end", async () => {
      const t = await taskOf("default/live.raw");
      return t?.state !== "running" ? t : null;
    }, 10_000);
    assert.equal(task.state, "cancelled");
    assert.deepEqual(filesIn(disksDir()).filter((f) => f.startsWith("live")), []);
    assert.equal(await db().disk.count({ where: { file: { in: ["dropped.raw", "live.raw"] } } }), 0);
  });
});
