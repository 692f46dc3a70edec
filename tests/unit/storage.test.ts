/**
 * Path confinement: names from requests never leave their storage folder. A table of
 * hostile names against the name rule and Storage, plus symlinks on a real folder;
 * and size parsing.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { assertFoldersApart, parsePools } from "../../server/agent/config";
import { Storage } from "../../server/agent/storage";
import { GuesthouseError } from "../../server/domain/errors";
import { imageFileName, parseSize } from "../../server/domain/validation";
import { diskPath } from "../../server/qemu/args";

const HOSTILE = [
  "",
  ".",
  "..",
  "../x.qcow2",
  "../../etc/passwd",
  "a/../../b",
  "/etc/passwd",
  "/abs.qcow2",
  "a/b.qcow2",
  "a\\b.qcow2",
  ".hidden.qcow2",
  "..qcow2",
  "x.qcow2\0.iso",
  "x\n.qcow2",
  "name with space.qcow2",
  "$(reboot).qcow2",
  "`id`.raw",
  "a;rm -rf.raw",
  "-o.qcow2",
  "~root.qcow2",
  "x.qcow2.part",
  "%2e%2e%2fx",
  "ä.qcow2",
  "x".repeat(129),
];

describe("image names", () => {
  for (const name of HOSTILE) {
    test(`refused: ${JSON.stringify(name).slice(0, 40)}`, () => {
      assert.equal(imageFileName.safeParse(name).success, false);
    });
  }
  for (const name of ["disk.qcow2", "web-01.raw", "Win10_x64+SP1.vhd", "a", "x".repeat(128), "archive.tar.qcow2"]) {
    test(`accepted: ${name.slice(0, 40)}`, () => {
      assert.equal(imageFileName.safeParse(name).success, true);
    });
  }
});

describe("Storage confinement", () => {
  let root: string;
  let storage: Storage;
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "gh-storage-"));
    for (const d of ["disks", "fast", "isos", "outside", "fast-real"]) fs.mkdirSync(path.join(root, d));
    fs.writeFileSync(path.join(root, "disks", "ok.qcow2"), "x");
    fs.writeFileSync(path.join(root, "outside", "secret.qcow2"), "x");
    fs.symlinkSync(path.join(root, "outside", "secret.qcow2"), path.join(root, "disks", "link.qcow2"));
    fs.symlinkSync(path.join(root, "outside"), path.join(root, "disks", "dirlink"));
    fs.mkdirSync(path.join(root, "disks", "sub"));
    storage = new Storage({ pools: { default: path.join(root, "disks"), fast: path.join(root, "fast") }, isoDir: path.join(root, "isos") });
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  for (const name of HOSTILE) {
    test(`pathOf refuses ${JSON.stringify(name).slice(0, 40)}`, () => {
      assert.throws(() => storage.pathOf("default", name), (err: GuesthouseError) => err.code === "invalid-input");
    });
  }

  test("a valid name resolves inside its folder", () => {
    assert.equal(storage.pathOf("default", "ok.qcow2"), path.join(root, "disks", "ok.qcow2"));
    assert.equal(storage.pathOf("fast", "new.raw"), path.join(root, "fast", "new.raw"));
  });

  test("unknown pools, and pools of the other kind, are refused", () => {
    assert.throws(() => storage.pathOf("nope", "ok.qcow2"), (err: GuesthouseError) => err.code === "not-found");
    assert.throws(() => storage.pathOf("__proto__", "ok.qcow2"), (err: GuesthouseError) => err.code === "not-found");
    assert.throws(() => storage.pathOf("constructor", "ok.qcow2"), (err: GuesthouseError) => err.code === "not-found");
    assert.throws(() => storage.pathOf("isos", "x.qcow2", "images"), /ISO images/);
  });

  test("existing(): a symlink to a file outside is refused, a regular file is fine", async () => {
    await assert.rejects(storage.existing("default", "link.qcow2"), /symbolic link/);
    await assert.rejects(storage.existing("default", "dirlink"), /symbolic link/);
    await assert.rejects(storage.existing("default", "sub"), /not a regular file/);
    await assert.rejects(storage.existing("default", "missing.qcow2"), (err: GuesthouseError) => err.code === "not-found");
    assert.equal(await storage.existing("default", "ok.qcow2"), path.join(root, "disks", "ok.qcow2"));
  });

  test("a storage folder that is itself a symlink still works (its real path is compared)", async () => {
    fs.writeFileSync(path.join(root, "fast-real", "r.raw"), "x");
    fs.rmdirSync(path.join(root, "fast"));
    fs.symlinkSync(path.join(root, "fast-real"), path.join(root, "fast"));
    assert.equal(await storage.existing("fast", "r.raw"), path.join(root, "fast", "r.raw"));
  });

  test("list() shows regular image files only", async () => {
    fs.writeFileSync(path.join(root, "disks", "up.raw.part"), "x");
    fs.writeFileSync(path.join(root, "disks", ".dot"), "x");
    assert.deepEqual(await storage.list("default"), ["ok.qcow2"]);
  });

  test("scrub() replaces folder paths by pool names in messages", () => {
    assert.equal(storage.scrub(`could not open ${path.join(root, "disks", "ok.qcow2")}`), "could not open default/ok.qcow2");
  });

  test("QEMU's disk path is confined the same way", () => {
    const layout = { pools: { default: "/srv/disks" } };
    assert.equal(diskPath(layout as never, { pool: "default", file: "a.qcow2" }), "/srv/disks/a.qcow2");
    for (const file of ["../a.qcow2", "a/b", ".x", ".."]) {
      assert.throws(() => diskPath(layout as never, { pool: "default", file }), GuesthouseError, file);
    }
    assert.throws(() => diskPath(layout as never, { pool: "toString", file: "a" }), /no storage folder/);
  });
});

describe("storage folders from the environment", () => {
  test("name=/path pairs beside the default", () => {
    assert.deepEqual(parsePools("fast=/srv/nvme, bulk=/srv/hdd", "/data/disks"), { default: "/data/disks", fast: "/srv/nvme", bulk: "/srv/hdd" });
    assert.deepEqual(parsePools(undefined, "/d"), { default: "/d" });
  });
  for (const bad of ["fast", "=/x", "Fast=/x", "fast=relative", "default=/x", "isos=/x", "a=/x,a=/y", "../x=/y"]) {
    test(`refused: ${bad}`, () => assert.throws(() => parsePools(bad, "/d")));
  }

  test("folders that overlap, hold the data folder or sit inside it are refused at agent start; the usual layout and separate folders are fine", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "gh-apart-"));
    try {
      const data = path.join(root, "data");
      const d = (...parts: string[]) => path.join(root, ...parts);
      for (const dir of [data, d("data", "disks"), d("data", "images"), d("nvme"), d("nvme", "inner"), d("hdd")]) fs.mkdirSync(dir, { recursive: true });
      fs.symlinkSync(d("nvme"), d("alias"));
      const usual = { default: d("data", "disks") };
      assert.doesNotThrow(() => assertFoldersApart(data, usual, d("data", "images")));
      assert.doesNotThrow(() => assertFoldersApart(data, { ...usual, fast: d("nvme"), bulk: d("hdd") }, d("data", "images")));
      const refused: Array<[string, Record<string, string>, string, RegExp]> = [
        ["a folder inside another", { ...usual, fast: d("nvme"), inner: d("nvme", "inner") }, d("data", "images"), /overlap/],
        ["the same folder twice, once through a symlink", { ...usual, fast: d("nvme"), alias: d("alias") }, d("data", "images"), /overlap/],
        ["a folder holding the data folder", { ...usual, everything: root }, d("data", "images"), /holds the data folder/],
        ["a folder inside the data folder", { ...usual, secrets: d("data", "secrets") }, d("data", "images"), /inside the data folder/],
        ["the ISO folder inside a disk folder", { ...usual, fast: d("nvme") }, d("nvme", "inner"), /overlap/],
      ];
      for (const [what, pools, isos, why] of refused) assert.throws(() => assertFoldersApart(data, pools, isos), why, what);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("sizes", () => {
  const G = 2 ** 30;
  const table: Array<[string, number]> = [
    ["20G", 20 * G],
    ["20g", 20 * G],
    ["20 GiB", 20 * G],
    ["20GB", 20 * G],
    ["512M", 512 * 2 ** 20],
    ["1.5T", 1.5 * 2 ** 40],
    ["1048576", 2 ** 20],
    ["2048K", 2 * 2 ** 20],
    [" 10 G ", 10 * G],
    ["1.0001M", Math.ceil((1.0001 * 2 ** 20) / 512) * 512],
  ];
  for (const [text, bytes] of table) test(`${JSON.stringify(text)} is ${bytes} bytes`, () => assert.equal(parseSize(text), bytes));
  for (const bad of ["", "G", "-1G", "1e3G", "0x10G", "10 X", "1G2", "ten", "1,5G", "NaN", "Infinity", "0", "1K", "65T", "99999999999999999T"]) {
    test(`refused: ${JSON.stringify(bad)}`, () => assert.throws(() => parseSize(bad), (err: GuesthouseError) => err.code === "invalid-input"));
  }
});
