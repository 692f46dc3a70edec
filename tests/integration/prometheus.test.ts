/**
 * `/metrics` on the real web server with a real agent, database and demo guest: what an
 * admin's token, a member's of another team and other tokens see; the refusals; Debian's
 * promtool on the real text; and a real Prometheus from Debian's package, running as
 * nobody with its token in a file and the README's scrape configuration (for loopback
 * HTTP), checked by promtool, scraping it until the guest's series are in its
 * database (a team name with quotes, a backslash and a newline read back unchanged).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { createToken } from "../../server/auth/api-tokens";
import { createSession, SESSION_COOKIE, type SessionUser } from "../../server/auth/sessions";
import { hashSecret } from "../../server/auth/tokens";
import { waitFor } from "../helpers/agent";
import { sessionUser } from "../helpers/db";
import { freePort } from "../helpers/net";
import { parseExposition, promtool, type ParsedSample } from "../helpers/prometheus-text";
import { testDefinition } from "../helpers/specs";
import { story } from "../helpers/story";
import { startTestStack, type TestStack } from "../helpers/web";

/** The scrape configuration the README gives (its yaml block under "Metrics for Prometheus"). */
function readmeScrapeConfig(): string {
  const readme = fs.readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("### Metrics for Prometheus"));
  const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  assert.ok(block.includes("scrape_configs:"), "the README's section Metrics for Prometheus has a yaml block with scrape_configs");
  for (const part of ["scheme: https", "scrape_interval: 15s", "/etc/prometheus/guesthouse.token", '"dashboard.example:443"']) assert.ok(block.includes(part), `the README's scrape configuration still has ${part}`);
  return block;
}

/** A team name a person could give (quotes, a backslash, a newline): each must reach Prometheus as it is. */
const TEAM = 'Ops "red" \\ night\nshift';

story("/metrics for Prometheus", (step) => {
  let stack: TestStack;
  let admin: SessionUser;
  let mia: SessionUser;
  let oz: SessionUser;
  let webId = "";
  let promDir = "";
  let prometheus: ChildProcess | null = null;
  let promOutput = "";
  const db = () => stack.database.db;
  const token = async (user: SessionUser, scope: "read" | "operate" | "write" | "admin", teamId?: string) =>
    (await createToken(db(), user, { name: `metrics ${scope}`, scope, days: 1, teamId })).token;

  async function scrape(headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string; headers: Headers }> {
    const res = await fetch(`${stack.baseUrl}/metrics`, { headers });
    return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text(), headers: res.headers };
  }
  /** A token's scrape, which must succeed and pass promtool. */
  async function samplesFor(bearer: string): Promise<ParsedSample[]> {
    const got = await scrape({ authorization: `Bearer ${bearer}` });
    assert.equal(got.status, 200, got.text);
    assert.equal(got.type, "text/plain; version=0.0.4; charset=utf-8");
    const checked = promtool(got.text);
    assert.equal(checked.status, 0, `promtool check metrics:\n${checked.output}\n--- the text:\n${got.text}`);
    return parseExposition(got.text).samples;
  }
  const guestsIn = (samples: ParsedSample[]) => samples.filter((s) => s.name === "guesthouse_guest_up").map((s) => s.labels.guest).sort();

  async function stopPrometheus(): Promise<void> {
    const p = prometheus;
    prometheus = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (p.exitCode === null && p.signalCode === null) {
      p.kill("SIGKILL");
      await exited;
    }
  }

  before(async () => {
    stack = await startTestStack({ agentEnv: { GUESTHOUSE_METRICS_INTERVAL_MS: "1000" } });
    const local = await db().host.findUniqueOrThrow({ where: { name: "local" } });
    // A second host whose agent never answers.
    const far = await db().host.create({ data: { name: "far", endpoint: "unix:/nonexistent/guesthouse-agent.sock" } });
    const ops = await db().team.create({ data: { name: TEAM, nameKey: "ops-red" } });
    const other = await db().team.create({ data: { name: "Elsewhere", nameKey: "elsewhere" } });
    const mk = (username: string, teamId: string) =>
      db().user.create({ data: { username, usernameKey: username, passwordHash: "x", teamId, memberships: { create: { teamId, role: "member" } } } });
    const m = await mk("mia", ops.id);
    const o = await mk("oz", other.id);
    mia = await sessionUser(db(), m.id);
    oz = await sessionUser(db(), o.id);
    admin = await sessionUser(db(), (await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } })).id);
    await db().guest.create({ data: { name: "prom-idle", vcpus: 2, memoryMiB: 128, ownerId: m.id, teamId: ops.id, hostId: local.id } });
    await db().guest.create({ data: { name: "prom-far", vcpus: 1, memoryMiB: 64, ownerId: m.id, teamId: ops.id, hostId: far.id } });
    await db().guest.create({ data: { name: "their-guest", vcpus: 1, memoryMiB: 64, ownerId: o.id, teamId: other.id, hostId: local.id } });

    // The running guest, made and started through the API as its member would: the demo ISO, a disk, a user-mode NIC.
    const write = await token(mia, "write");
    const definition = testDefinition("prom-web", [1], { cdroms: [{ iso: "demo.iso" }], bootOrder: ["cdrom", "disk"], nics: [{ model: "virtio", isolated: true, forwards: [] }] });
    const made = await fetch(`${stack.baseUrl}/api/v1/guests`, { method: "POST", headers: { authorization: `Bearer ${write}`, "content-type": "application/json" }, body: JSON.stringify(definition) });
    const body = (await made.json()) as { id?: string };
    assert.equal(made.status, 201, JSON.stringify(body));
    webId = body.id!;
    const started = await fetch(`${stack.baseUrl}/api/v1/guests/${webId}/power`, { method: "POST", headers: { authorization: `Bearer ${write}`, "content-type": "application/json" }, body: JSON.stringify({ action: "start" }) });
    assert.equal(started.status, 200, await started.text());
  });
  after(async () => {
    await stopPrometheus();
    if (promDir) fs.rmSync(promDir, { recursive: true, force: true });
    await stack?.cleanup();
  });

  step("an admin's token sees every guest, the running one's counters, and the hosts; promtool passes", { timeout: 120_000 }, async () => {
    const bearer = await token(admin, "admin");
    const samples = await waitFor(
      "the running guest's vCPU counter on /metrics",
      async () => {
        const s = await samplesFor(bearer);
        return s.some((x) => x.name === "guesthouse_guest_cpu_seconds_total" && x.labels.guest === "prom-web") ? s : null;
      },
      30_000,
      250,
    );
    const one = (name: string, labels: Record<string, string>) => samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    const web = { team: TEAM, guest: "prom-web", host: "local" };
    assert.equal(one("guesthouse_guest_up", web)[0]?.value, "1");
    assert.deepEqual(one("guesthouse_guest_info", web)[0]?.labels, { ...web, id: webId });
    assert.deepEqual(
      one("guesthouse_guest_cpu_seconds_total", web).map((s) => s.labels.vcpu),
      ["0"],
    );
    assert.ok(Number(one("guesthouse_guest_cpu_seconds_total", web)[0]!.value) > 0);
    assert.equal(one("guesthouse_guest_memory_configured_bytes", web)[0]?.value, String(256 * 2 ** 20));
    assert.ok(Number(one("guesthouse_guest_memory_resident_bytes", web)[0]?.value) > 0);
    // The disk by the file name its pages show, in its storage folder.
    const disk = await db().disk.findFirstOrThrow({ where: { guestId: webId } });
    assert.deepEqual(
      one("guesthouse_guest_disk_allocated_bytes", web).map((s) => [s.labels.disk, s.labels.pool]),
      [[disk.file, disk.pool]],
    );
    assert.equal(one("guesthouse_guest_disk_read_bytes_total", web).length, 1);
    // A user-mode NIC has no counters on the host: no network series rather than zeros.
    assert.equal(samples.filter((s) => s.name.startsWith("guesthouse_guest_network_")).length, 0);
    // Stopped guests: up 0 with what their next start gives them.
    assert.equal(one("guesthouse_guest_up", { guest: "prom-idle" })[0]?.value, "0");
    assert.equal(one("guesthouse_guest_vcpus", { guest: "prom-idle" })[0]?.value, "2");
    assert.deepEqual(guestsIn(samples), ["prom-idle", "prom-web", "their-guest"], "every team's guests; none of the host that does not answer");
    // The hosts: the one that answers with its figures, the other as an agent that is down.
    assert.deepEqual(
      samples.filter((s) => s.name === "guesthouse_agent_up").map((s) => [s.labels.host, s.value]),
      [
        ["far", "0"],
        ["local", "1"],
      ],
    );
    assert.equal(one("guesthouse_host_cores", { host: "local" })[0]?.value, String(os.cpus().length));
    assert.ok(Number(one("guesthouse_host_guests_running", { host: "local" })[0]?.value) >= 1);
    assert.ok(one("guesthouse_host_storage_free_bytes", { host: "local", pool: "default" }).length === 1);
    assert.equal(samples.filter((s) => s.labels.host === "far" && s.name !== "guesthouse_agent_up").length, 0);
  });

  step("a member's token sees their team's guests only and no host series; an admin's read token, every guest and the host", async () => {
    const theirs = await samplesFor(await token(oz, "read"));
    assert.deepEqual(guestsIn(theirs), ["their-guest"]);
    assert.equal(theirs.filter((s) => s.labels.team === TEAM || s.labels.guest?.startsWith("prom-")).length, 0, "nothing of another team's");
    assert.equal(theirs.filter((s) => s.name.startsWith("guesthouse_host_")).length, 0);
    assert.deepEqual(
      theirs.filter((s) => s.name === "guesthouse_agent_up").map((s) => s.labels.host),
      ["local"],
      "only the host of their own guest",
    );

    const mine = await samplesFor(await token(mia, "read"));
    assert.deepEqual(guestsIn(mine), ["prom-idle", "prom-web"]);
    assert.equal(mine.filter((s) => s.name.startsWith("guesthouse_host_")).length, 0);

    // Host series are the policy's canSeeHostMetrics: an admin's token of any scope, not limited to a team.
    const adminRead = await samplesFor(await token(admin, "read"));
    assert.deepEqual(guestsIn(adminRead), ["prom-idle", "prom-web", "their-guest"]);
    assert.equal(adminRead.find((s) => s.name === "guesthouse_host_cores")?.value, String(os.cpus().length));
    // An admin's token limited to their own team acts in that team only (which has no guest here).
    const adminOfTeam = await samplesFor(await token(admin, "admin", admin.teamId));
    assert.deepEqual(guestsIn(adminOfTeam), []);
    assert.equal(adminOfTeam.filter((s) => s.name.startsWith("guesthouse_host_")).length, 0);

    // The browser's session works too (to look at it), as its user.
    const cookie = `${SESSION_COOKIE}=${(await createSession(db(), mia.id)).secret}`;
    const bySession = await scrape({ cookie });
    assert.equal(bySession.status, 200);
    assert.deepEqual(guestsIn(parseExposition(bySession.text).samples), ["prom-idle", "prom-web"]);
  });

  step("no token, an unknown, a revoked one or another scheme: 401 saying how to make one; a disabled user's token gets nothing", async () => {
    const revoked = await token(mia, "read");
    await db().apiToken.update({ where: { id: hashSecret(revoked) }, data: { revokedAt: new Date() } });
    const disabled = await token(oz, "read");
    await db().user.update({ where: { id: oz.id }, data: { disabledAt: new Date() } });
    try {
      const tries: Array<Record<string, string>> = [{}, { authorization: "Bearer gh_not-a-token" }, { authorization: `Bearer ${revoked}` }, { authorization: "Basic YWRtaW46eA==" }, { authorization: `Bearer ${disabled}` }];
      for (const headers of tries) {
        const got = await scrape(headers);
        const what = JSON.stringify(headers);
        assert.equal(got.status, 401, what);
        assert.match(got.headers.get("www-authenticate") ?? "", /^Bearer realm="Guesthouse"/, what);
        assert.match(got.type, /^text\/plain/, what);
        assert.match(got.text, /account page \(\/account\)/, what);
        assert.doesNotMatch(got.text, /guesthouse_/, what);
      }
    } finally {
      await db().user.update({ where: { id: oz.id }, data: { disabledAt: null } });
    }
  });

  step("a real Prometheus, as nobody with the token in a file and the README's scrape configuration (promtool checks it), scrapes it: the guest's series arrive and up is 1", { timeout: 120_000 }, async () => {
    const bearer = await token(admin, "read");
    promDir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-prometheus-"));
    fs.chmodSync(promDir, 0o755);
    const nobody = Number(spawnSync("id", ["-u", "nobody"], { encoding: "utf8" }).stdout.trim());
    const nogroup = Number(spawnSync("getent", ["group", "nogroup"], { encoding: "utf8" }).stdout.split(":")[2]);
    const tokenFile = path.join(promDir, "token");
    fs.writeFileSync(tokenFile, `${bearer}\n`, { mode: 0o644 });
    const data = path.join(promDir, "data");
    fs.mkdirSync(data, { mode: 0o700 });
    fs.chownSync(data, nobody, nogroup);
    // The README's scrape configuration as written, but for this stack: plain HTTP on
    // loopback, the token file here, and a scrape a second (so the test is short).
    const config = path.join(promDir, "prometheus.yml");
    const promPort = await freePort();
    const job = readmeScrapeConfig()
      .replace("scheme: https", "scheme: http")
      .replace("scrape_interval: 15s", "scrape_interval: 1s")
      .replace("/etc/prometheus/guesthouse.token", tokenFile)
      .replace('"dashboard.example:443"', `"127.0.0.1:${stack.port}"`);
    fs.writeFileSync(config, `global:\n  scrape_timeout: 1s\n${job}`, { mode: 0o644 });
    const checked = spawnSync("promtool", ["check", "config", config], { encoding: "utf8" });
    assert.equal(checked.status, 0, `promtool check config: ${checked.stdout}${checked.stderr}\n${fs.readFileSync(config, "utf8")}`);
    prometheus = spawn(
      "setpriv",
      ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "prometheus", `--config.file=${config}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${promPort}`, "--log.level=warn"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    prometheus.once("error", (err) => (promOutput += `could not start it: ${err.message}\n`));
    prometheus.stdout!.on("data", (c: Buffer) => (promOutput += c.toString()));
    prometheus.stderr!.on("data", (c: Buffer) => (promOutput += c.toString()));

    const api = `http://127.0.0.1:${promPort}/api/v1`;
    const query = async (q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
      if (prometheus?.exitCode !== null || prometheus.signalCode !== null) throw new Error(`prometheus is not running: ${promOutput}`);
      const res = await fetch(`${api}/query?query=${encodeURIComponent(q)}`);
      const body = (await res.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      assert.equal(body.status, "success");
      return body.data.result;
    };
    const targets = async () => JSON.stringify(((await (await fetch(`${api}/targets`)).json()) as { data: { activeTargets: Array<{ health: string; lastError: string }> } }).data.activeTargets.map((t) => [t.health, t.lastError]));
    let series: Awaited<ReturnType<typeof query>> = [];
    try {
      series = await waitFor(
        "Prometheus to have the guest's vCPU series",
        async () => {
          const result = (await query("guesthouse_guest_cpu_seconds_total")).filter((r) => r.metric.guest === "prom-web");
          return result.length ? result : null;
        },
        30_000,
        250,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; its targets: ${await targets().catch(() => "?")}; its output: ${promOutput}`);
    }
    // Prometheus's own parser read the team's quotes, backslash and newline back as they are.
    assert.deepEqual(series[0]!.metric, { __name__: "guesthouse_guest_cpu_seconds_total", instance: `127.0.0.1:${stack.port}`, job: "guesthouse", team: TEAM, guest: "prom-web", host: "local", vcpu: "0" });
    const up = await waitFor("up{job=\"guesthouse\"} to be 1", async () => ((await query('up{job="guesthouse"}'))[0]?.value[1] === "1" ? true : null), 10_000, 250);
    assert.equal(up, true);
    // An admin's read token: the host's series too.
    assert.equal((await query("guesthouse_host_cores"))[0]?.value[1], String(os.cpus().length));
    assert.equal((await query('guesthouse_guest_up{guest="prom-idle"}'))[0]?.value[1], "0");
    await stopPrometheus();
    fs.rmSync(promDir, { recursive: true, force: true });
    promDir = "";
  });
});
