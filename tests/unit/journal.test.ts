/**
 * The task journal (server/agent/journal.ts) on real files and real processes: what a
 * restarted agent removes and stops, and what it leaves alone.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { Journal } from "../../server/agent/journal";
import { Tasks } from "../../server/agent/tasks";

let dir: string;
let folder: string;
const journalDir = () => path.join(dir, "journal");
const task = (n: number) => `tmiw0abc${n}0123456789`;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-journal-"));
  folder = path.join(dir, "disks");
  fs.mkdirSync(folder);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test("an entry is on disk from the task's start to its end; the end removes what was not committed", () => {
  const journal = new Journal(journalDir());
  journal.begin(task(1), "create", "create default/a.qcow2");
  assert.deepEqual(fs.readdirSync(journalDir()), [`${task(1)}.json`]);
  const temp = journal.temporary(task(1), path.join(folder, "a.qcow2"));
  assert.equal(temp, path.join(folder, `.a.qcow2.${task(1)}.new`));
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(journalDir(), `${task(1)}.json`), "utf8")).made, [{ temp, final: path.join(folder, "a.qcow2") }], "named before the file exists");
  fs.writeFileSync(temp, "half");
  journal.end(task(1));
  assert.deepEqual(fs.readdirSync(journalDir()), []);
  assert.deepEqual(fs.readdirSync(folder), []);
});

test("a commit puts every temporary in place, or none when a name was taken meanwhile", async () => {
  const journal = new Journal(journalDir());
  journal.begin(task(1), "create", "x");
  const a = journal.temporary(task(1), path.join(folder, "a.qcow2"));
  const key = journal.temporary(task(1), path.join(folder, "a.key"));
  fs.writeFileSync(a, "image");
  fs.writeFileSync(key, "secret");
  await journal.commit(task(1));
  journal.end(task(1));
  assert.deepEqual(fs.readdirSync(folder).sort(), ["a.key", "a.qcow2"]);

  journal.begin(task(2), "create", "y");
  const b = journal.temporary(task(2), path.join(folder, "b.qcow2"));
  const taken = journal.temporary(task(2), path.join(folder, "a.key"));
  fs.writeFileSync(b, "image");
  fs.writeFileSync(taken, "other secret");
  await assert.rejects(journal.commit(task(2)), /"a\.key" appeared meanwhile/);
  journal.end(task(2));
  assert.deepEqual(fs.readdirSync(folder).sort(), ["a.key", "a.qcow2"], "b.qcow2 was taken back; a.key is the first task's");
  assert.equal(fs.readFileSync(path.join(folder, "a.key"), "utf8"), "secret");
});

test("recovery removes an unfinished task's temporaries and a final its unfinished commit linked, and nothing else", () => {
  const before = new Journal(journalDir());
  before.begin(task(1), "convert", "convert a → b");
  const temp = before.temporary(task(1), path.join(folder, "b.raw"));
  fs.writeFileSync(temp, "half a copy");
  before.begin(task(2), "clone", "clone a → c");
  const linked = before.temporary(task(2), path.join(folder, "c.qcow2"));
  fs.writeFileSync(linked, "whole");
  fs.linkSync(linked, path.join(folder, "c.qcow2")); // the commit's link, then the agent died
  before.begin(task(3), "create", "create d");
  before.temporary(task(3), path.join(folder, "d.qcow2")); // journaled, never made
  fs.writeFileSync(path.join(folder, "d.qcow2"), "someone else's d"); // a file of that name the task did not make
  fs.writeFileSync(path.join(folder, "b.raw"), "someone else's b");
  fs.writeFileSync(path.join(journalDir(), "notes.txt"), "not the journal's");

  const lines = new Journal(journalDir()).recover();
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /convert a → b.*removed the unfinished b\.raw/);
  assert.match(lines[1]!, /clone a → c.*removed c\.qcow2, removed the unfinished c\.qcow2/);
  assert.match(lines[2]!, /create d.*it had left nothing/);
  assert.deepEqual(fs.readdirSync(folder).sort(), ["b.raw", "d.qcow2"]);
  assert.equal(fs.readFileSync(path.join(folder, "b.raw"), "utf8"), "someone else's b");
  assert.deepEqual(fs.readdirSync(journalDir()), ["notes.txt"]);
});

test("a committed task's finals stay; an entry naming a file outside its own temporaries' pattern touches nothing", () => {
  const journal = new Journal(journalDir());
  journal.begin(task(1), "create", "a");
  const temp = journal.temporary(task(1), path.join(folder, "a.qcow2"));
  fs.writeFileSync(temp, "whole");
  fs.linkSync(temp, path.join(folder, "a.qcow2"));
  const entry = path.join(journalDir(), `${task(1)}.json`);
  fs.writeFileSync(entry, JSON.stringify({ ...JSON.parse(fs.readFileSync(entry, "utf8")), committed: true }));
  // A forged entry: its "temporary" is someone's image.
  fs.writeFileSync(path.join(folder, "victim.qcow2"), "victim");
  fs.writeFileSync(path.join(journalDir(), `${task(2)}.json`), JSON.stringify({ task: task(2), kind: "create", title: "forged", made: [{ temp: path.join(folder, "victim.qcow2"), final: path.join(folder, "victim.qcow2") }], committed: false, processes: [] }));
  new Journal(journalDir()).recover();
  assert.deepEqual(fs.readdirSync(folder).sort(), ["a.qcow2", "victim.qcow2"]);
});

test("recovery stops a process the task started that outlived its agent, and not one that merely has its pid", async () => {
  const journal = new Journal(journalDir());
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  const other = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    journal.begin(task(1), "convert", "x");
    journal.spawned(task(1), child.pid!);
    // An entry naming the other process with another start time: the pid was reused.
    fs.writeFileSync(path.join(journalDir(), `${task(2)}.json`), JSON.stringify({ task: task(2), kind: "convert", title: "y", made: [], committed: false, processes: [{ pid: other.pid, startTicks: "1" }] }));
    const exited = new Promise((r) => child.once("exit", (_code, signal) => r(signal)));
    const lines = new Journal(journalDir()).recover();
    assert.equal(await exited, "SIGKILL");
    assert.match(lines.join("\n"), new RegExp(`stopped process ${child.pid}`));
    assert.equal(other.exitCode, null);
    assert.equal(other.signalCode, null, "the other process runs on");
  } finally {
    child.kill("SIGKILL");
    other.kill("SIGKILL");
  }
});

test("a task that fails leaves none of its temporaries; one that succeeds without committing keeps nothing either", async () => {
  const tasks = new Tasks({ journal: new Journal(journalDir()) });
  await assert.rejects(
    tasks.run("convert", "fails", ["default/x"], async (ctx) => {
      fs.writeFileSync(ctx.temporary(path.join(folder, "x.raw")), "half");
      throw new Error("qemu-img died");
    }),
  );
  await tasks.run("convert", "forgets to commit", ["default/y"], async (ctx) => {
    fs.writeFileSync(ctx.temporary(path.join(folder, "y.raw")), "whole");
    return null;
  });
  await tasks.run("convert", "commits", ["default/z"], async (ctx) => {
    fs.writeFileSync(ctx.temporary(path.join(folder, "z.raw")), "whole");
    await ctx.commit();
    return null;
  });
  assert.deepEqual(fs.readdirSync(folder), ["z.raw"]);
  assert.deepEqual(fs.readdirSync(journalDir()), []);
});
