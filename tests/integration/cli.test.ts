/**
 * The `guesthouse` command-line client against a real running dashboard (web, agent,
 * database, QEMU): logged in with a real API token, it creates a guest that boots the
 * demo ISO, starts it, watches it boot on its serial console and types into it, follows
 * its events, reads its figures (top consumers, its history), stops and deletes it, all
 * through the CLI; then disks, uploads, tasks, tokens,
 * tables and --json, exit codes, --help on every command, and bash completion.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createToken } from "../../server/auth/api-tokens";
import { COMMANDS } from "../../cli/commands";
import { EXIT } from "../../cli/errors";
import type { SessionUser } from "../../server/auth/sessions";
import { waitFor } from "../helpers/agent";
import { sessionUser } from "../helpers/db";
import { BOOT_TIMEOUT_MS } from "../helpers/serial-shell";
import { startTestStack, type TestStack } from "../helpers/web";

const BIN = path.resolve("bin/guesthouse.js");

describe("the guesthouse CLI, against a real dashboard", () => {
  let stack: TestStack;
  let dir = "";
  let mia: SessionUser;
  let token = "";
  const env = () => ({ ...process.env, GUESTHOUSE_CONFIG: path.join(dir, "config.json"), GUESTHOUSE_URL: "", GUESTHOUSE_TOKEN: "" });
  const children: ChildProcess[] = [];

  /** Runs the CLI to its end: its exit code and output. */
  function cli(args: string[], input?: string): { code: number; out: string; err: string } {
    const r = spawnSync(process.execPath, [BIN, ...args], { env: env(), input, encoding: "utf8", timeout: 120_000 });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  }
  /** Starts the CLI and keeps it running (a console, an event stream): its output so far, and a way to end it. */
  function follow(args: string[]): { child: ChildProcess; out: () => string; err: () => string; exited: Promise<number> } {
    const child = spawn(process.execPath, [BIN, ...args], { env: env(), stdio: ["pipe", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    let err = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : -1))));
    return { child, out: () => out, err: () => err, exited };
  }

  before(async () => {
    // Sampled and collected every second: the metrics commands have figures within seconds of a start.
    stack = await startTestStack({ agentEnv: { GUESTHOUSE_METRICS_INTERVAL_MS: "1000" }, webEnv: { GUESTHOUSE_METRICS_POLL_MS: "1000" } });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-cli-"));
    const db = stack.database.db;
    const team = await db.team.create({ data: { name: "Cli", nameKey: "cli" } });
    const user = await db.user.create({ data: { username: "mia", usernameKey: "mia", passwordHash: "x", teamId: team.id, memberships: { create: { teamId: team.id, role: "member" } } } });
    mia = await sessionUser(db, user.id);
    token = (await createToken(db, mia, { name: "cli", scope: "write", days: 1 })).token;
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await stack?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("login keeps the dashboard and its token in a config file only its owner can read; a wrong token is refused and not kept", () => {
    const bad = cli(["login", stack.baseUrl, "--name", "lab", "--token", "gh_wrong"]);
    assert.equal(bad.code, EXIT.refused, bad.err);
    assert.match(bad.err, /token is unknown, revoked or expired/);
    assert.equal(fs.existsSync(path.join(dir, "config.json")), false);
    const good = cli(["login", stack.baseUrl, "--name", "lab", "--token", token]);
    assert.equal(good.code, 0, good.err);
    assert.equal(fs.statSync(path.join(dir, "config.json")).mode & 0o777, 0o600);
    const remotes = JSON.parse(cli(["remote", "list", "--json"]).out) as Array<{ name: string; current: boolean }>;
    assert.deepEqual(remotes, [{ name: "lab", url: stack.baseUrl, current: true }]);
  });

  test("create → start → boot → serial console → events → top and metrics → stop → delete, all through the CLI", { timeout: BOOT_TIMEOUT_MS + 120_000 }, async () => {
    const made = cli(["create", "cli-demo", "--memory", "256M", "--iso", "demo.iso", "--nic", "none", "--tag", "ci", "--json"]);
    assert.equal(made.code, 0, made.err);
    const guest = JSON.parse(made.out) as { id: string; name: string; state: string };
    assert.deepEqual([guest.name, guest.state], ["cli-demo", "stopped"]);

    const events = follow(["events", "--json"]);
    await waitFor("the event stream to open", () => events.err().includes("Following the events"), 10_000);
    const started = cli(["start", "cli-demo"]);
    assert.deepEqual([started.code, started.out], [0, "cli-demo: running\n"], started.err);
    await waitFor("the start among the events", () => events.out().includes(JSON.stringify({ event: "guest", id: guest.id, state: "running" })), 20_000);

    // The serial console, opened while the guest boots: the boot shows on it, up to the demo ISO's shell.
    const console = follow(["console", "cli-demo"]);
    await waitFor("the demo guest to boot, seen through the CLI's console", () => console.out().includes("GUESTHOUSE-DEMO-READY"), BOOT_TIMEOUT_MS, 250);
    // Typed into the guest's shell through the console; the guest's answer comes back on stdout
    // (the shell computes it, so the echo of the typed line never matches).
    console.child.stdin!.write("\necho CLI-$((40+2))\n");
    await waitFor("the guest's answer", () => console.out().includes("CLI-42"), 30_000, 100);
    console.child.stdin!.end();
    assert.equal(await console.exited, 0, console.err());

    const listed = JSON.parse(cli(["list", "--json"]).out) as Array<{ name: string; state: string }>;
    assert.deepEqual(listed.map((g) => [g.name, g.state]), [["cli-demo", "running"]]);
    const table = cli(["list"]).out.split("\n");
    assert.match(table[0]!, /^NAME\s+STATE\s+VCPUS\s+MEMORY\s+TEAM\s+OWNER\s+ID$/);
    assert.match(table[1]!, /^cli-demo\s+running\s+1\s+256 MiB\s+Cli\s+mia\s+\S+$/);
    assert.match(cli(["show", "cli-demo"]).out, /^cdrom 0\s+demo\.iso$/m);

    // Its figures: top consumers (the running guest has a CPU figure now), and its history over the hour.
    const top = await waitFor("cli-demo's CPU figure on top", () => {
      const r = cli(["top", "--json"]);
      const items = (JSON.parse(r.out) as { items: Array<{ name: string; running: boolean; figures: Record<string, number | null> }> }).items;
      return items.find((g) => g.name === "cli-demo" && g.figures.cpu !== null) ?? null;
    }, 30_000, 1_000);
    assert.equal(top.running, true);
    assert.ok(top.figures.cpu! >= 0 && top.figures.cpu! <= 100, `CPU ${top.figures.cpu}`);
    assert.ok(top.figures.rss! > 0, "QEMU's resident memory");
    const topTable = cli(["top", "--sort", "rss", "--window", "now"]).out.split("\n");
    assert.match(topTable[0]!, /^NAME\s+TEAM\s+HOST\s+MEMORY HELD BY QEMU\s+CPU \(OF ITS VCPUS\)\s+DISK READ/);
    assert.match(topTable[1]!, /^cli-demo\s+Cli\s+local\s+\d+(\.\d)? [MG]iB\s+\d+(\.\d+)? %/);
    const history = await waitFor("cli-demo's history through the CLI", () => {
      const r = cli(["metrics", "cli-demo"]);
      return r.code === 0 && /^CPU \(of its vCPUs\)/m.test(r.out) ? r.out : null;
    }, 40_000, 1_000);
    assert.match(history, /^cli-demo, the last hour \(\d+ points of 10 s\):\nFIELD\s+LATEST\s+MIN\s+AVERAGE\s+MAX\n/);
    assert.match(history, /^memory held by QEMU\s+\d+(\.\d)? [MG]iB\s+/m);
    const week = JSON.parse(cli(["metrics", "cli-demo", "--range", "week", "--json"]).out) as { resolution: number };
    assert.equal(week.resolution, 60);

    assert.equal(cli(["delete", "cli-demo"]).code, EXIT.refused, "not while it runs");
    const stopped = cli(["stop", "cli-demo"]);
    assert.deepEqual([stopped.code, stopped.out], [0, "cli-demo: stopped\n"], stopped.err);
    await waitFor("the stop among the events", () => events.out().includes(JSON.stringify({ event: "guest", id: guest.id, state: "stopped" })), 20_000);
    events.child.kill("SIGTERM");
    const deleted = cli(["delete", "cli-demo", "--with-disks"]);
    assert.equal(deleted.code, 0, deleted.err);
    assert.equal(await stack.database.db.guest.count({ where: { id: guest.id } }), 0);
  });

  test("disks: made, uploaded (no progress bar when not on a terminal), grown, snapshotted, converted while waiting for the task, listed, deleted", () => {
    assert.equal(cli(["disk", "create", "cli.qcow2", "64M"]).code, 0);
    const image = path.join(dir, "cli-up.raw");
    fs.writeFileSync(image, randomBytes(2 * 2 ** 20));
    const up = cli(["disk", "upload", image, "--json"]);
    assert.equal(up.code, 0, up.err);
    assert.equal(up.err, "", "nothing on stderr when it is not a terminal");
    assert.equal((JSON.parse(up.out) as { format: string }).format, "raw");
    assert.match(cli(["disk", "resize", "cli.qcow2", "128M"]).out, /now 128 MiB/);
    assert.match(cli(["disk", "snapshot", "cli.qcow2", "first"]).out, /1 snapshot/);
    const converted = cli(["disk", "convert", "cli.qcow2", "cli-copy.raw", "raw", "--wait"]);
    assert.equal(converted.code, 0, converted.err);
    const disks = JSON.parse(cli(["disk", "list", "--json"]).out) as Array<{ file: string; state: string }>;
    assert.deepEqual(disks.map((d) => `${d.file} ${d.state}`).sort(), ["cli-copy.raw ready", "cli-up.raw ready", "cli.qcow2 ready"]);
    const tasks = JSON.parse(cli(["task", "list", "--json"]).out) as Array<{ kind: string; state: string }>;
    assert.ok(tasks.some((t) => t.kind === "convert" && t.state === "succeeded"));
    for (const file of ["cli.qcow2", "cli-copy.raw", "cli-up.raw"]) assert.equal(cli(["disk", "delete", file]).code, 0);
    assert.equal(cli(["disk", "delete", "cli.qcow2"]).code, EXIT.refused, "gone");
  });

  test("tokens: made (printed once), listed, revoked; a revoked token's remote is refused", () => {
    const made = cli(["token", "create", "ci-job", "--scope", "read", "--days", "2"]);
    assert.equal(made.code, 0, made.err);
    const fresh = made.out.trim();
    assert.match(fresh, /^gh_[A-Za-z0-9_-]{43}$/);
    assert.match(cli(["token", "list"]).out, /^ci-job\s+read\s+all\s+\S+\s+-\s+working/m);
    assert.equal(cli(["login", stack.baseUrl, "--name", "ci", "--token", fresh]).code, 0);
    assert.equal(cli(["list", "--remote", "ci"]).code, 0);
    assert.equal(cli(["start", "nothing", "--remote", "ci"]).code, EXIT.refused);
    assert.equal(cli(["token", "revoke", "ci-job", "--remote", "lab"]).code, 0);
    const refused = cli(["list", "--remote", "ci"]);
    assert.equal(refused.code, EXIT.refused);
    assert.match(refused.err, /revoked/);
    assert.equal(cli(["remote", "use", "lab"]).code, 0);
  });

  test("exit codes: 2 for usage errors, 3 for refusals, 1 for failures; each with a message that says what to do", () => {
    const cases: Array<[string[], number, RegExp]> = [
      [["frobnicate"], EXIT.usage, /Unknown command "frobnicate"/],
      [["show"], EXIT.usage, /Usage: guesthouse show <guest>/],
      [["list", "--colour"], EXIT.usage, /Unknown option '--colour'/],
      [["create", "x", "--memory", "lots"], EXIT.usage, /--memory lots: write a size/],
      [["show", "no-such-guest"], EXIT.refused, /no guest "no-such-guest"/],
      [["create", "Bad Name!"], EXIT.refused, /name/],
      [["list", "--remote", "nowhere"], EXIT.usage, /no remote "nowhere"/],
      [["top", "--sort", "speed"], EXIT.usage, /--sort is one of cpu, hostCpu, rss/],
      [["metrics", "anything", "--range", "decade"], EXIT.usage, /--range is one of hour, day, week, month, year/],
      [["metrics", "no-such-guest"], EXIT.refused, /no guest "no-such-guest"/],
    ];
    for (const [args, code, message] of cases) {
      const r = cli(args);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, message, args.join(" "));
    }
    // A dashboard that is not there: a failure, not a refusal.
    const gone = spawnSync(process.execPath, [BIN, "list"], { env: { ...env(), GUESTHOUSE_CONFIG: path.join(dir, "none.json"), GUESTHOUSE_URL: "http://127.0.0.1:9", GUESTHOUSE_TOKEN: token }, encoding: "utf8" });
    assert.equal(gone.status, EXIT.failure, gone.stderr);
    assert.match(gone.stderr, /Cannot reach http:\/\/127\.0\.0\.1:9/);
  });

  test("--help works on every command, and the bash completion completes commands, sub-commands and options", () => {
    for (const command of COMMANDS) {
      const r = cli([...command.words, "--help"]);
      assert.equal(r.code, 0, command.words.join(" "));
      assert.ok(r.out.startsWith(`Usage: guesthouse ${command.words.join(" ")}`), r.out);
      assert.match(r.out, /--json/);
    }
    const script = cli(["completion", "bash"]).out;
    assert.equal(spawnSync("bash", ["-n"], { input: script }).status, 0, "the script parses");
    const complete = (...words: string[]) =>
      spawnSync("bash", ["-c", `${script}\nCOMP_WORDS=(guesthouse ${words.join(" ")}); COMP_CWORD=${words.length}; _guesthouse; echo "\${COMPREPLY[*]}"`], { encoding: "utf8" }).stdout.trim();
    assert.equal(complete("di"), "disk");
    assert.equal(complete("disk", "s"), "snapshot");
    assert.equal(complete("disk", "create", "x", "--f"), "--format");
    assert.match(cli(["completion", "zsh"]).out, /^#compdef guesthouse/);
  });
});
