/** Data migrations, on a real SQLite database migrated like production. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { createTestDb, seedBasics, type TestDb } from "../helpers/db";

describe("migrations", () => {
  let t: TestDb;
  before(async () => {
    t = await createTestDb();
  });
  after(() => t.cleanup());

  test("upload tasks recorded before Task.target existed get it from their title; other tasks are left alone", async () => {
    const { host, user } = await seedBasics(t.db);
    const row = (id: string, kind: string, title: string) => ({ id, kind, title, state: "failed", hostId: host.id, userId: user.id });
    await t.db.task.createMany({
      data: [
        row("web-old-upload", "upload", "upload isos/debian-12.iso (631 MiB)"),
        row("web-old-disk", "upload", "upload default/my_disk-1.2+x.qcow2 (20 GiB)"),
        row("tconvert", "convert", "convert default/a.qcow2 to raw"),
        { ...row("web-new", "upload", "upload default/new.raw (1 GiB)"), target: "default/new.raw" },
      ],
    });
    const sqlite = new Database(t.url.replace(/^file:/, ""));
    try {
      sqlite.exec(fs.readFileSync(path.resolve("prisma/migrations/20261126001000_task_target_backfill/migration.sql"), "utf8"));
    } finally {
      sqlite.close();
    }
    const targets = Object.fromEntries((await t.db.task.findMany({ select: { id: true, target: true } })).map((r) => [r.id, r.target]));
    assert.deepEqual(targets, {
      "web-old-upload": "isos/debian-12.iso",
      "web-old-disk": "default/my_disk-1.2+x.qcow2",
      tconvert: null,
      "web-new": "default/new.raw",
    });
  });
});
