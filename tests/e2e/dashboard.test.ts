/**
 * The spine end to end, as a person uses it, in Debian's Chromium: log in, create a
 * guest from the demo ISO, start it, see and type into its screen through noVNC,
 * shut it down (the page follows without reloading), delete it. Then the console
 * websocket's refusals, checked with a plain websocket client.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, afterEach, before } from "node:test";
import type { Page } from "playwright-core";
import { hashPassword } from "../../server/auth/password";
import { createSession, SESSION_COOKIE } from "../../server/auth/sessions";
import { mintTicket } from "../../server/console/tickets";
import { guestInclude, specOf } from "../../server/web/guests";
import { waitFor } from "../helpers/agent";
import { freeForwardPort, upgradeStatus } from "../helpers/net";
import { launchBrowser, screenshotStep, submitNewGuest } from "../helpers/browser";
import { startTestStack, type TestStack } from "../helpers/web";
import { guestSerialLog } from "../helpers/serial-shell";
import { story } from "../helpers/story";

const GUEST = "e2e-demo";

story("dashboard in Chromium", (step) => {
  let stack: TestStack;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let guestId = "";
  const serialLog = () => guestSerialLog(stack.agent, guestId);

  before(async () => {
    stack = await startTestStack();
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
  });
  afterEach((t) => screenshotStep("dashboard", t.name, [page]));
  after(async () => {
    await browser?.close();
    await stack?.cleanup();
  });

  step("every page asks for a login first", async () => {
    await page.goto(`${stack.baseUrl}/`);
    assert.match(new URL(page.url()).pathname, /^\/login$/);
    await page.goto(`${stack.baseUrl}/guests/new`);
    assert.match(new URL(page.url()).pathname, /^\/login$/);
    const events = await fetch(`${stack.baseUrl}/api/events`);
    assert.equal(events.status, 401);
  });

  step("a wrong password is refused with a clear message", async () => {
    await page.fill('input[name="username"]', stack.admin.username);
    await page.fill('input[name="password"]', "not-the-password");
    await page.click('button[type="submit"]');
    await page.getByTestId("form-error").waitFor();
    assert.match(await page.getByTestId("form-error").innerText(), /do not match/);
  });

  step("after five failed logins a user name must wait, even with the right password; then it works", async () => {
    const db = stack.database.db;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    await db.user.create({ data: { username: "throttled", passwordHash: await hashPassword("the-right-one"), role: "member", teamId: admin.teamId, memberships: { create: { teamId: admin.teamId, role: "member" } } } });
    const other = await launchBrowser(); // its own cookies: this page stays logged out for the next steps
    try {
      const p = await other.context.newPage();
      const attempt = async (password: string) => {
        await p.goto(`${stack.baseUrl}/login`);
        await p.fill('input[name="username"]', "throttled");
        await p.fill('input[name="password"]', password);
        await p.click('button[type="submit"]');
        await Promise.race([p.getByTestId("form-error").waitFor(), p.waitForURL(`${stack.baseUrl}/`, { waitUntil: "commit" })]);
        return (await p.getByTestId("form-error").count()) ? await p.getByTestId("form-error").innerText() : "logged in";
      };
      for (let i = 0; i < 5; i++) assert.match(await attempt(`wrong-${i}`), /do not match/, `failure ${i + 1}`);
      assert.match(await attempt("the-right-one"), /Too many failed logins for this user name\. Try again in 1 s/);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await attempt("the-right-one"), "logged in");
    } finally {
      await other.close();
    }
  });

  step("log in and see the empty guest list with the host's accelerator", async () => {
    await page.fill('input[name="password"]', stack.admin.password);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${stack.baseUrl}/`, { waitUntil: "commit" });
    await page.getByText("No guests yet").waitFor();
    assert.match(await page.getByTestId("accelerator").innerText(), /KVM|TCG/);
  });

  step("creating a guest with a bad name shows what names may be", async () => {
    await page.goto(`${stack.baseUrl}/guests/new`);
    await page.fill('input[name="name"]', "bad name!");
    await page.click('button[type="submit"]');
    await page.getByTestId("form-error").waitFor();
    assert.match(await page.getByTestId("form-error").innerText(), /letters, digits/);
    assert.equal(await stack.database.db.guest.count(), 0, "nothing was created");
    assert.deepEqual(fs.readdirSync(path.join(stack.agent.dataDir, "disks")), [], "no disk was left behind");
  });

  step("create a guest from the demo ISO with a sparse disk", async () => {
    await submitNewGuest(page, { name: GUEST, diskGiB: 1, iso: "demo.iso" });
    guestId = (await stack.database.db.guest.findFirstOrThrow({ where: { name: GUEST } })).id;
    assert.equal(new URL(page.url()).pathname, `/guests/${guestId}`);
    assert.equal(await page.getByTestId("guest-name").innerText(), GUEST);
    assert.equal(await page.getByTestId("guest-state").getAttribute("data-state"), "stopped");
    const commandLine = await page.getByTestId("command-line").innerText();
    assert.match(commandLine, /^qemu-system-x86_64 /);
    assert.match(commandLine, /demo\.iso/);
    assert.match(commandLine, /virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:/);

    const disks = fs.readdirSync(path.join(stack.agent.dataDir, "disks"));
    assert.equal(disks.length, 1);
    const stat = fs.statSync(path.join(stack.agent.dataDir, "disks", disks[0]!));
    assert.ok(stat.blocks * 512 < 10 * 1024 * 1024, "the 1 GiB qcow2 disk is sparse");
  });

  step("a duplicate name is refused", async () => {
    await page.goto(`${stack.baseUrl}/guests/new`);
    await page.fill('input[name="name"]', GUEST);
    await page.click('button[type="submit"]');
    await page.getByTestId("form-error").waitFor();
    assert.match(await page.getByTestId("form-error").innerText(), /already has a guest named/);
    assert.equal(await stack.database.db.guest.count(), 1);
  });

  step("the list shows the guest with its vCPUs, memory, disks and network", async () => {
    await page.goto(`${stack.baseUrl}/`);
    const row = page.locator(`[data-testid="guest-row"][data-guest="${GUEST}"]`);
    const text = await row.innerText();
    assert.match(text, /stopped/);
    assert.match(text, /256 MiB/);
    assert.match(text, /1 GiB virtio/);
    assert.match(text, /CD demo\.iso/);
    assert.match(text, /user · 52:54:00:/);
  });

  step("edit the hardware of the stopped guest and see the command line change", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
    assert.match(await page.getByTestId("command-line").innerText(), /-m 256\b/);
    await page.getByRole("link", { name: "Edit hardware" }).click();
    await page.fill('input[name="memoryMiB"]', "384");
    await page.fill('input[name="vcpus"]', "2");
    await page.selectOption('select[name="disk0-cache"]', "writeback");
    await page.getByRole("button", { name: "Add port forward" }).click();
    await page.fill('input[name="nic0-fwd0-host"]', String(await freeForwardPort()));
    await page.fill('input[name="tags"]', "demo, e2e");
    await page.getByRole("button", { name: "Save hardware" }).click();
    await page.waitForURL(`${stack.baseUrl}/guests/${guestId}`, { waitUntil: "commit" });
    const commandLine = await page.getByTestId("command-line").innerText();
    assert.match(commandLine, /-m 384\b/);
    assert.match(commandLine, /-smp 2,sockets=1,cores=2,threads=1/);
    // Cache mode writeback: the host's page cache (no O_DIRECT), flushes kept.
    assert.match(commandLine, /"cache":\{"direct":false,"no-flush":false\}/);
    assert.match(commandLine, /hostfwd=tcp:127\.0\.0\.1:\d+-:22/, "on the host's forward address");
  });

  step("a port forward on the dashboard's own port, or outside the host's range, is refused and nothing is saved", async () => {
    for (const [port, why] of [[stack.port, /this dashboard's own port/], [2222, /outside the ports this host forwards to guests \(20000–29999\)/]] as const) {
      await page.goto(`${stack.baseUrl}/guests/${guestId}/edit`);
      await page.fill('input[name="nic0-fwd0-host"]', String(port));
      await page.getByRole("button", { name: "Save hardware" }).click();
      await page.getByTestId("form-error").waitFor();
      assert.match(await page.getByTestId("form-error").innerText(), why);
    }
    const nic = await stack.database.db.nic.findFirstOrThrow({ where: { guestId } });
    assert.ok((JSON.parse(nic.forwards) as Array<{ hostPort: number }>).every((f) => f.hostPort >= 20000 && f.hostPort <= 29999), nic.forwards);
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
  });

  step("an impossible topology is refused with a clear message and nothing is saved", async () => {
    await page.getByRole("link", { name: "Edit hardware" }).click();
    await page.fill('input[name="vcpus"]', "3");
    await page.fill('input[name="sockets"]', "2");
    await page.getByRole("button", { name: "Save hardware" }).click();
    await page.getByTestId("form-error").waitFor();
    assert.match(await page.getByTestId("form-error").innerText(), /multiple of sockets/);
    const row = await stack.database.db.guest.findUniqueOrThrow({ where: { id: guestId } });
    assert.equal(row.vcpus, 2);
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
  });

  step("start it and watch the state change", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
    await page.getByRole("button", { name: "Start", exact: true }).click();
    await page.locator('[data-testid="guest-state"][data-state="running"]').waitFor();
    await waitFor("the guest to boot", () => serialLog().includes("GUESTHOUSE-DEMO-READY"), 90_000);
  });

  step("editing a running guest shows pending changes that apply at the next start", async () => {
    await page.getByRole("link", { name: "Edit hardware" }).click();
    await page.fill('input[name="memoryMiB"]', "512");
    await page.getByRole("button", { name: "Save hardware" }).click();
    await page.waitForURL(`${stack.baseUrl}/guests/${guestId}`, { waitUntil: "commit" });
    const pending = page.getByTestId("pending-changes");
    await pending.waitFor();
    const text = await pending.innerText();
    assert.match(text, /apply at the next start/);
    assert.match(text, /Memory\s+384 MiB\s+→\s+512 MiB/);
    assert.match(await page.getByTestId("command-line").innerText(), /-m 384\b/, "the running command line is unchanged");
  });

  step("the console shows the guest's screen and takes keystrokes", async () => {
    await page.getByRole("link", { name: "Console" }).click();
    await page.locator('[data-testid="console-state"][data-state="connected"]').waitFor();
    const canvas = page.locator('[data-testid="vnc-screen"] canvas');
    await canvas.waitFor();
    const colours = await waitFor(
      "the canvas to show more than one colour",
      async () => {
        const n = await canvas.evaluate((el: HTMLCanvasElement) => {
          const ctx = el.getContext("2d");
          if (!ctx || el.width < 100 || el.height < 100) return 0;
          const { data } = ctx.getImageData(0, 0, el.width, el.height);
          const seen = new Set<number>();
          let lit = 0;
          for (let i = 0; i < data.length; i += 4) {
            seen.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
            if (data[i]! + data[i + 1]! + data[i + 2]! > 300) lit++;
          }
          return lit > 200 ? seen.size : 0;
        });
        return n >= 2 ? n : 0;
      },
      30_000,
      250,
    );
    assert.ok(colours >= 2);

    // noVNC sends QEMU physical key codes, so shifted characters need a real Shift press,
    // as on a person's keyboard (keyboard.type would send "S" without Shift).
    const marker = `typed-${Date.now()}-ok`;
    await canvas.click();
    for (const ch of `echo ${marker} >/dev/ttyS0`) {
      if (ch === ">") await page.keyboard.press("Shift+Period");
      else if (/[A-Z]/.test(ch)) await page.keyboard.press(`Shift+Key${ch}`);
      else await page.keyboard.type(ch);
    }
    await page.keyboard.press("Enter");
    await waitFor("the typed command to run in the guest", () => serialLog().includes(marker), 30_000);
  });

  step("the console websocket refuses anything but a fresh ticket of this user and guest", async () => {
    const cookies = await browser.context.cookies(stack.baseUrl);
    const cookie = cookies.map((c) => `${c.name}=${c.value}`).join("; ");
    const user = await stack.database.db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const url = (ticket: string) => `ws://127.0.0.1:${stack.port}/ws/console/${guestId}?ticket=${encodeURIComponent(ticket)}`;
    const attempt = (ticket: string, headers: Record<string, string>) => upgradeStatus(url(ticket), headers, { firstMessage: true });
    const origin = stack.baseUrl;

    assert.equal(await attempt("", { cookie, origin }), 401, "no ticket");
    assert.equal(await attempt("A".repeat(43), { cookie, origin }), 401, "a made-up ticket");
    const fresh = await mintTicket(stack.database.db, user.id, guestId);
    assert.equal(await attempt(fresh.ticket, { origin }), 401, "a ticket without the session");
    const other = await mintTicket(stack.database.db, user.id, guestId);
    assert.equal(await attempt(other.ticket, { cookie, origin: "http://evil.example" }), 403, "a foreign origin");
    const good = await mintTicket(stack.database.db, user.id, guestId);
    assert.equal(await attempt(good.ticket, { cookie, origin }), 101, "a fresh ticket opens the console (RFB data flows)");
    assert.equal(await attempt(good.ticket, { cookie, origin }), 401, "the same ticket again");
    const notWs = await mintTicket(stack.database.db, user.id, guestId);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(url(notWs.ticket).replace("ws:", "http:"), {
        headers: { cookie, origin, connection: "Upgrade", upgrade: "websocket" }, // no Sec-WebSocket-Key
      });
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("upgrade", (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 400, "an upgrade that is no websocket handshake is refused before the guest stream opens");
    const expired = await mintTicket(stack.database.db, user.id, guestId, new Date(Date.now() - 31_000));
    assert.equal(await attempt(expired.ticket, { cookie, origin }), 401, "an expired ticket");
  });

  step("shut it down from the page; the state follows without a reload", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
    let reloaded = false;
    page.once("load", () => (reloaded = true));
    await page.getByRole("button", { name: "Shut down" }).click();
    await page.locator('[data-testid="guest-state"][data-state="stopped"]').waitFor({ timeout: 60_000 });
    assert.equal(reloaded, false);
    assert.match(serialLog(), /GUESTHOUSE-DEMO-POWEROFF/);
  });

  step("start again, pause and resume it from the page, force it off", async () => {
    await page.getByRole("button", { name: "Start", exact: true }).click();
    await page.locator('[data-testid="guest-state"][data-state="running"]').waitFor();
    assert.match(await page.getByTestId("command-line").innerText(), /-m 512\b/, "the pending change applied at this start");
    assert.equal(await page.getByTestId("pending-changes").count(), 0);
    await page.getByRole("button", { name: "Pause" }).click();
    await page.locator('[data-testid="guest-state"][data-state="paused"]').waitFor();
    assert.equal(await page.getByRole("button", { name: "Shut down" }).count(), 0, "a paused guest offers no shutdown");
    await page.getByRole("button", { name: "Resume" }).click();
    await page.locator('[data-testid="guest-state"][data-state="running"]').waitFor();
    await page.getByRole("button", { name: "Force off" }).click();
    await page.locator('[data-testid="guest-state"][data-state="stopped"]').waitFor();
  });

  step("the event stream tells each user about the guests they may see, and no others", async () => {
    const db = stack.database.db;
    const agent = stack.agent.client;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    // A member of another team: the admin's guests are not theirs to see.
    const otherTeam = await db.team.create({ data: { name: "events-team" } });
    const member = await db.user.create({ data: { username: "events-member", passwordHash: "x", role: "member", teamId: otherTeam.id, memberships: { create: { teamId: otherTeam.id, role: "member" } } } });
    // Two guests without disks (nothing to boot, little CPU): one of the member's, one of the admin's.
    const { id: _id, name: _name, ownerId: _owner, createdAt: _c, updatedAt: _u, ...settings } = await db.guest.findUniqueOrThrow({ where: { id: guestId } });
    const mine = await db.guest.create({ data: { ...settings, name: "events-member-guest", ownerId: member.id, teamId: otherTeam.id } });
    const theirs = await db.guest.create({ data: { ...settings, name: "events-admin-guest", ownerId: admin.id } });
    /** Follows /api/events as a user: every guest id it names, in order. */
    const listen = async (userId: string) => {
      const cookie = `${SESSION_COOKIE}=${(await createSession(db, userId)).secret}`;
      const stop = new AbortController();
      const res = await fetch(`${stack.baseUrl}/api/events`, { headers: { cookie }, signal: stop.signal });
      assert.equal(res.status, 200);
      const seen: string[] = [];
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      void (async () => {
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buffer += value;
          for (const m of buffer.matchAll(/^data: (\[.*\])$/gm)) seen.push(...(JSON.parse(m[1]!) as string[]));
          buffer = buffer.slice(buffer.lastIndexOf("\n") + 1);
        }
      })().catch(() => {});
      return { seen, close: () => stop.abort() };
    };
    const adminEvents = await listen(admin.id);
    const memberEvents = await listen(member.id);
    try {
      for (const g of [theirs, mine]) {
        const status = await agent.start(specOf(await db.guest.findUniqueOrThrow({ where: { id: g.id }, include: guestInclude })));
        assert.equal(status.state, "running");
      }
      await waitFor("the admin to hear about both guests", () => adminEvents.seen.includes(mine.id) && adminEvents.seen.includes(theirs.id), 10_000);
      await waitFor("the member to hear about their guest", () => memberEvents.seen.includes(mine.id), 10_000);
      const heardOfTheirs = () => adminEvents.seen.filter((id) => id === theirs.id).length;
      await new Promise((r) => setTimeout(r, 500)); // the start's changes have all arrived
      const before = heardOfTheirs();
      await agent.forceOff(theirs.id);
      await waitFor("the admin to hear their guest stopped", () => heardOfTheirs() > before, 10_000);
      await new Promise((r) => setTimeout(r, 500)); // anything about it would have reached the member by now
      assert.deepEqual([...new Set(memberEvents.seen)], [mine.id], "the member heard of nothing but their own guest");
    } finally {
      adminEvents.close();
      memberEvents.close();
      for (const g of [mine, theirs]) {
        await agent.forceOff(g.id).catch(() => {});
        await agent.forget(g.id).catch(() => {});
        await db.guest.delete({ where: { id: g.id } });
      }
      await db.session.deleteMany({ where: { userId: member.id } });
      await db.user.delete({ where: { id: member.id } });
    }
  });

  step("export the definition and import it as a new guest", async () => {
    const response = await page.request.get(`${stack.baseUrl}/guests/${guestId}/definition`);
    assert.equal(response.status(), 200);
    const text = await response.text();
    const definition = JSON.parse(text) as { name: string; memoryMiB: number; tags: string[]; nics: Array<{ forwards: unknown[] }> };
    assert.equal(definition.name, GUEST);
    assert.equal(definition.memoryMiB, 512);
    assert.deepEqual(definition.tags, ["demo", "e2e"]);
    assert.doesNotMatch(text, /volume|52:54:00|\/tmp\//, "no volume id, MAC or host path leaves the server");
    const other = await fetch(`${stack.baseUrl}/guests/${guestId}/definition`);
    assert.equal(other.status, 401, "export needs a login");

    await page.goto(`${stack.baseUrl}/guests/new`);
    // Same host: the forwarded port is taken by the original, and import says so.
    await page.fill('textarea[name="definition"]', JSON.stringify({ ...definition, name: "e2e-imported" }));
    await page.getByRole("button", { name: "Import guest" }).click();
    await page.getByTestId("import-error").waitFor();
    assert.match(await page.getByTestId("import-error").innerText(), /already forwarded to e2e-demo/);
    const noForwards = { ...definition, name: "e2e-imported", nics: definition.nics.map((n) => ({ ...n, forwards: [] })) };
    await page.fill('textarea[name="definition"]', JSON.stringify(noForwards));
    await page.getByRole("button", { name: "Import guest" }).click();
    await page.waitForURL(/\/guests\/(?!new$)[a-z0-9]+$/, { waitUntil: "commit" });
    assert.equal(await page.getByTestId("guest-name").innerText(), "e2e-imported");
    const imported = await stack.database.db.guest.findFirstOrThrow({ where: { name: "e2e-imported" }, include: { disks: true, nics: true } });
    assert.equal(imported.memoryMiB, 512);
    assert.equal(imported.disks.length, 1);
    assert.equal(imported.nics.length, 1);
    assert.ok(fs.existsSync(path.join(stack.agent.dataDir, "disks", imported.disks[0]!.file)), "a new disk was made");

    await page.goto(`${stack.baseUrl}/guests/new`);
    await page.fill('textarea[name="definition"]', '{"guesthouse": 1, "name": "x", "memoryMiB": 0}');
    await page.getByRole("button", { name: "Import guest" }).click();
    await page.getByTestId("import-error").waitFor();
    assert.match(await page.getByTestId("import-error").innerText(), /memoryMiB/);
  });

  step("make it a template, create a linked clone from it, and boot the clone", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByRole("button", { name: "Convert to template" }).click();
    await page.getByTestId("template-badge").waitFor();
    assert.equal(await page.getByRole("button", { name: "Start", exact: true }).count(), 0, "a template offers no start");

    await page.fill('input[name="clone-name"]', "e2e-linked");
    assert.equal(await page.locator('select[name="mode"]').inputValue(), "linked", "a template offers linked clones first");
    await page.getByRole("button", { name: "Create guest from template" }).click();
    await page.waitForURL((url) => !url.pathname.endsWith(guestId) && /\/guests\/[a-z0-9]+$/.test(url.pathname), { waitUntil: "commit" });
    assert.equal(await page.getByTestId("guest-name").innerText(), "e2e-linked");
    const clone = await stack.database.db.guest.findFirstOrThrow({ where: { name: "e2e-linked" }, include: { disks: true } });
    const template = await stack.database.db.disk.findFirstOrThrow({ where: { guestId } });
    assert.equal(clone.disks[0]!.baseId, template.id, "the clone's disk is linked to the template's");

    await page.getByRole("button", { name: "Start", exact: true }).click();
    await page.locator('[data-testid="guest-state"][data-state="running"]').waitFor();
    await page.getByRole("button", { name: "Force off" }).click();
    await page.locator('[data-testid="guest-state"][data-state="stopped"]').waitFor();
  });

  step("a template with linked clones cannot be deleted; after the clones go, it can", async () => {
    const deleteVia = async (name: string) => {
      const row = await stack.database.db.guest.findFirstOrThrow({ where: { name } });
      await page.goto(`${stack.baseUrl}/guests/${row.id}`);
      await page.getByRole("button", { name: "Delete" }).click();
      await page.getByRole("dialog").getByRole("button", { name: `Delete ${name}` }).click();
    };
    await deleteVia(GUEST);
    await page.getByTestId("action-error").waitFor();
    assert.match(await page.getByTestId("action-error").innerText(), /Linked clones use .*e2e-linked/);

    for (const name of ["e2e-linked", "e2e-imported", GUEST]) {
      await deleteVia(name);
      await page.waitForURL(`${stack.baseUrl}/`, { waitUntil: "commit" });
      await page.locator(`[data-testid="guest-row"][data-guest="${name}"]`).waitFor({ state: "detached" });
    }
    await page.getByText("No guests yet").waitFor();
    assert.equal(await stack.database.db.guest.count(), 0);
    assert.equal(await stack.database.db.disk.count(), 0);
    assert.deepEqual(fs.readdirSync(path.join(stack.agent.dataDir, "disks")), [], "every disk file is gone");
  });

  step("no page broke the Content-Security-Policy (noVNC, xterm.js and Next run under it)", () => {
    assert.deepEqual(browser.cspViolations(), []);
  });
});
