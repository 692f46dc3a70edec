/**
 * The console end to end in Debian's Chromium, against the real web server, agent,
 * database and a real demo guest: the guest list's live thumbnail, the screen with
 * its toolbar (Ctrl-Alt-Del reboots the guest; a reboot from the dashboard makes the
 * console reconnect by itself), paste as keystrokes, the serial console in xterm.js,
 * ticket refusals, a view-only link whose typing never reaches the guest (even when a
 * hostile page writes RFB key events on the websocket itself), revoking it, the
 * session record, and the serial log after the guest stopped.
 */
import assert from "node:assert/strict";
import { after, afterEach, before } from "node:test";
import type { Page } from "playwright-core";
import { mintShareTicket, mintTicket } from "../../server/console/tickets";
import { hashSecret } from "../../server/auth/tokens";
import { waitFor } from "../helpers/agent";
import { upgradeStatus } from "../helpers/net";
import { createSession, SESSION_COOKIE } from "../../server/auth/sessions";
import { launchBrowser, logIn, screenshotStep, submitNewGuest } from "../helpers/browser";
import { startTestStack, type TestStack } from "../helpers/web";
import { guestSerialLog } from "../helpers/serial-shell";
import { story } from "../helpers/story";

const GUEST = "e2e-console";

/**
 * Installed in every page before its scripts run: keeps the console websockets the
 * page opens (the native objects, which noVNC accepts) so the test can write raw RFB
 * messages on them, as a hostile page could. Plain JavaScript: a compiled function
 * would carry the test runner's helpers into the page.
 */
const KEEP_CONSOLE_SOCKETS = `(() => {
  const Native = window.WebSocket;
  const kept = (window.__consoleSockets = []);
  function Kept(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    if (String(url).includes("/ws/console/")) kept.push(ws);
    return ws;
  }
  Kept.prototype = Native.prototype;
  Object.assign(Kept, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Kept;
})();`;

/** PC (XT set 1) scancodes of the keys the injected commands use, as QEMU's extended key events carry them. */
const SCANCODES: Record<string, number> = {
  ...Object.fromEntries([..."1234567890"].map((c, i) => [c, 0x02 + i])),
  ...Object.fromEntries([..."qwertyuiop"].map((c, i) => [c, 0x10 + i])),
  ...Object.fromEntries([..."asdfghjkl"].map((c, i) => [c, 0x1e + i])),
  ...Object.fromEntries([..."zxcvbnm"].map((c, i) => [c, 0x2c + i])),
  "-": 0x0c,
  ".": 0x34,
  "/": 0x35,
  " ": 0x39,
};
const SHIFTED: Record<string, string> = { ">": ".", ...Object.fromEntries([..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"].map((c) => [c, c.toLowerCase()])) };

/**
 * The RFB messages that type `text` + Enter: QEMU extended key events (what noVNC
 * sends to QEMU) or plain KeyEvents with X keysyms, Shift pressed where a US keyboard
 * needs it.
 */
function keyMessages(text: string, kind: "qemu" | "plain"): number[][] {
  const SHIFT = { keysym: 0xffe1, scancode: 0x2a };
  const RETURN = { keysym: 0xff0d, scancode: 0x1c };
  const message = (k: { keysym: number; scancode: number }, down: boolean) => {
    const b = Buffer.alloc(kind === "qemu" ? 12 : 8);
    if (kind === "qemu") {
      b.writeUInt8(255, 0);
      b.writeUInt8(0, 1);
      b.writeUInt16BE(down ? 1 : 0, 2);
      b.writeUInt32BE(k.keysym, 4);
      b.writeUInt32BE(k.scancode, 8);
    } else {
      b.writeUInt8(4, 0);
      b.writeUInt8(down ? 1 : 0, 1);
      b.writeUInt32BE(k.keysym, 4);
    }
    return [...b];
  };
  const out: number[][] = [];
  for (const ch of text) {
    const base = SHIFTED[ch] ?? ch;
    const scancode = SCANCODES[base];
    if (scancode === undefined) throw new Error(`no scancode for ${JSON.stringify(ch)}`);
    const key = { keysym: ch.charCodeAt(0), scancode };
    if (SHIFTED[ch]) out.push(message(SHIFT, true));
    out.push(message(key, true), message(key, false));
    if (SHIFTED[ch]) out.push(message(SHIFT, false));
  }
  out.push(message(RETURN, true), message(RETURN, false));
  return out;
}

/** Writes `text` + Enter as raw RFB key messages on the page's open console websocket. */
async function injectKeys(page: Page, text: string, kind: "qemu" | "plain" = "qemu"): Promise<void> {
  const messages = keyMessages(text, kind);
  await page.evaluate(`(() => {
    const ws = [...window.__consoleSockets].reverse().find((s) => s.readyState === 1);
    if (!ws) throw new Error("no open console websocket");
    for (const m of ${JSON.stringify(messages)}) ws.send(new Uint8Array(m));
  })()`);
}

/** How many colours a canvas or image shows, and how many of its pixels are lit. */
async function pixelsOf(page: Page, selector: string): Promise<{ width: number; height: number; colours: number; lit: number }> {
  return page.locator(selector).first().evaluate(async (el: HTMLCanvasElement | HTMLImageElement) => {
    let canvas: HTMLCanvasElement;
    if (el instanceof HTMLImageElement) {
      await el.decode();
      canvas = document.createElement("canvas");
      canvas.width = el.naturalWidth;
      canvas.height = el.naturalHeight;
      canvas.getContext("2d")!.drawImage(el, 0, 0);
    } else canvas = el;
    const ctx = canvas.getContext("2d");
    if (!ctx || canvas.width === 0 || canvas.height === 0) return { width: canvas.width, height: canvas.height, colours: 0, lit: 0 };
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const seen = new Set<number>();
    let lit = 0;
    for (let i = 0; i < data.length; i += 4) {
      seen.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
      if (data[i]! + data[i + 1]! + data[i + 2]! > 300) lit++;
    }
    return { width: canvas.width, height: canvas.height, colours: seen.size, lit };
  });
}

story("console in Chromium", (step) => {
  let stack: TestStack;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let stranger: Awaited<ReturnType<typeof launchBrowser>> | null = null;
  let page: Page;
  let sharedPage: Page | null = null;
  let guestId = "";
  let shareUrl = "";
  const socketUrls: string[] = [];
  const firstFrames: string[] = [];

  const serialLog = () => guestSerialLog(stack.agent, guestId);
  const count = (text: string, marker: string) => text.split(marker).length - 1;
  const consoleState = (p: Page) => p.getByTestId("console-state").getAttribute("data-state");
  const vncSessions = () => stack.database.db.consoleSession.count({ where: { guestId, kind: "vnc" } });
  /** Starts recording every state the page's console passes through; the function returned reads them. */
  const recordConsoleStates = async (p: Page): Promise<() => Promise<string[]>> => {
    await p.evaluate(() => {
      const w = window as unknown as { __states: string[] };
      w.__states = [];
      const el = document.querySelector('[data-testid="console-state"]')!;
      new MutationObserver(() => w.__states.push(el.getAttribute("data-state") ?? "")).observe(el, { attributes: true });
    });
    return () => p.evaluate(() => (window as unknown as { __states: string[] }).__states);
  };

  before(async () => {
    stack = await startTestStack();
    browser = await launchBrowser();
    await browser.context.addInitScript(KEEP_CONSOLE_SOCKETS);
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
    page.on("websocket", (ws) => {
      socketUrls.push(ws.url());
      let first = true;
      ws.on("framereceived", ({ payload }) => {
        if (first) firstFrames.push(typeof payload === "string" ? payload : `<binary ${payload.length}>`);
        first = false;
      });
    });
    // Set-up, through the pages as a person would: log in, create the demo guest, start it.
    await logIn(page, stack.baseUrl, stack.admin);
    await page.goto(`${stack.baseUrl}/guests/new`);
    await submitNewGuest(page, { name: GUEST, diskGiB: 0, iso: "demo.iso" });
    guestId = (await stack.database.db.guest.findFirstOrThrow({ where: { name: GUEST } })).id;
    await page.getByRole("button", { name: "Start", exact: true }).click();
    await page.locator('[data-testid="guest-state"][data-state="running"]').waitFor();
    await waitFor("the guest to boot", () => serialLog().includes("GUESTHOUSE-DEMO-READY"), 90_000);
  });
  afterEach((t) => screenshotStep("console", t.name, [page, sharedPage]));
  after(async () => {
    await stranger?.close();
    await browser?.close();
    await stack?.cleanup();
  });

  step("the guest list shows a live thumbnail of the running guest that is not blank", async () => {
    await page.goto(`${stack.baseUrl}/`);
    const row = page.locator(`[data-testid="guest-row"][data-guest="${GUEST}"]`);
    const img = row.getByTestId("guest-thumbnail");
    await img.waitFor();
    const pixels = await waitFor(
      "a thumbnail with text on it",
      async () => {
        // A fresh picture every few seconds: read whichever is shown now.
        const p = await pixelsOf(page, `[data-testid="guest-row"][data-guest="${GUEST}"] [data-testid="guest-thumbnail"]`);
        return p.colours >= 2 && p.lit > 20 ? p : null;
      },
      30_000,
      1000,
    );
    assert.ok(pixels.width > 0 && pixels.width <= 640, `width ${pixels.width}`);
    // The route itself: a PNG, only with a login.
    const res = await page.request.get(`${stack.baseUrl}/guests/${guestId}/thumbnail`);
    assert.equal(res.status(), 200);
    assert.equal(res.headers()["content-type"], "image/png");
    assert.deepEqual([...(await res.body()).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal((await fetch(`${stack.baseUrl}/guests/${guestId}/thumbnail`)).status, 401);
  });

  step("the guest's downloads and reads answer only with a login, and only for a guest one may see", async () => {
    const routes = ["thumbnail", "serial-log", "viewers", "vnc-ca", "definition"];
    const db = stack.database.db;
    const otherTeam = await db.team.create({ data: { name: "routes-team" } });
    const member = await db.user.create({ data: { username: "routes-member", passwordHash: "x", role: "member", teamId: otherTeam.id, memberships: { create: { teamId: otherTeam.id, role: "member" } } } });
    const memberCookie = `${SESSION_COOKIE}=${(await createSession(db, member.id)).secret}`;
    for (const route of routes) {
      // A member of another team, for a guest that is not theirs to see: as if it did not exist.
      const notTheirs = await fetch(`${stack.baseUrl}/guests/${guestId}/${route}`, { headers: { cookie: memberCookie } });
      assert.equal(notTheirs.status, 404, `${route} of someone else's guest`);
      const anonymous = await fetch(`${stack.baseUrl}/guests/${guestId}/${route}`);
      assert.equal(anonymous.status, 401, `${route} without a login`);
      assert.equal(anonymous.headers.get("cache-control"), "no-store", `${route}: a refusal is not cached`);
      const missing = await page.request.get(`${stack.baseUrl}/guests/${"0".repeat(24)}/${route}`);
      assert.equal(missing.status(), 404, `${route} of a guest that does not exist (or is not ours)`);
      assert.match(await missing.text(), /does not exist, or you may not see it/);
    }
    // JSON for the page's poll, text for downloads.
    assert.deepEqual(await (await fetch(`${stack.baseUrl}/guests/${guestId}/viewers`)).json(), { message: "Log in first." });
    // This stack runs with TLS VNC off: there is no CA to hand out.
    assert.equal((await page.request.get(`${stack.baseUrl}/guests/${guestId}/vnc-ca`)).status(), 404);
  });

  step("open the console: the password comes as the first websocket message, never in a URL", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}/console`);
    await page.locator('[data-testid="console-state"][data-state="connected"]').waitFor();
    await waitFor(
      "the screen to show the guest",
      async () => {
        const p = await pixelsOf(page, '[data-testid="vnc-screen"] canvas');
        return p.colours >= 2 && p.lit > 200 ? p.colours : 0;
      },
      30_000,
      250,
    );
    const consoleUrls = socketUrls.filter((u) => u.includes("/ws/console/"));
    assert.ok(consoleUrls.length >= 1);
    for (const u of consoleUrls) {
      assert.match(u, new RegExp(`/ws/console/${guestId}\\?ticket=[A-Za-z0-9_-]{43}$`), "the URL holds the guest and a ticket only");
      assert.doesNotMatch(u, /password/i);
    }
    const first = JSON.parse(firstFrames[firstFrames.length - 1]!) as { password: string };
    assert.equal(typeof first.password, "string");
    assert.ok(first.password.length > 0, "the agent set a one-time VNC password");
    assert.ok(!consoleUrls.some((u) => u.includes(encodeURIComponent(first.password))));
  });

  step("Ctrl-Alt-Del from the toolbar reboots the guest; the console stays with it through the reboot", async () => {
    assert.equal(await consoleState(page), "connected");
    const statesSeen = await recordConsoleStates(page);
    const sessionsBefore = await vncSessions();
    const readyBefore = count(serialLog(), "GUESTHOUSE-DEMO-READY");
    await page.getByRole("button", { name: "Ctrl-Alt-Del" }).click();
    await waitFor("the guest to log its reboot", () => serialLog().includes("GUESTHOUSE-DEMO-REBOOT"), 30_000);
    await waitFor("the guest to boot again", () => count(serialLog(), "GUESTHOUSE-DEMO-READY") > readyBefore, 90_000);
    await waitFor("the screen after the reboot", async () => (await pixelsOf(page, '[data-testid="vnc-screen"] canvas')).lit > 200, 30_000, 250);
    // The guest rebooted inside the same QEMU: the one connection carried it all, never dropping.
    const states = await statesSeen();
    assert.deepEqual(states.filter((s) => s !== "connected"), [], `the console left "connected": ${states.join(" → ")}`);
    assert.equal(await consoleState(page), "connected");
    assert.equal(await vncSessions(), sessionsBefore, "no new console session was needed");
  });

  step("a reboot from the dashboard restarts QEMU: the console shows it and reconnects by itself", async () => {
    const statesSeen = await recordConsoleStates(page);
    const sessionsBefore = await vncSessions();
    const readyBefore = count(serialLog(), "GUESTHOUSE-DEMO-READY");
    const other = await browser.context.newPage();
    await other.goto(`${stack.baseUrl}/guests/${guestId}`);
    await other.getByRole("button", { name: "Reboot" }).click();
    await waitFor("the guest to power off and boot again", () => count(serialLog(), "GUESTHOUSE-DEMO-READY") > readyBefore, 120_000);
    await other.close();
    const states = await waitFor(
      "the console to reconnect",
      async () => {
        const seen = await statesSeen();
        const lost = seen.findIndex((s) => s !== "connected");
        return lost >= 0 && seen.slice(lost).includes("connected") && (await consoleState(page)) === "connected" ? seen : null;
      },
      60_000,
      250,
    );
    assert.ok(states.some((s) => s === "reconnecting" || s === "guest-off"), `states seen: ${states.join(" → ")}`);
    assert.ok((await vncSessions()) > sessionsBefore, "a new session was opened");
    await waitFor("the screen after the restart", async () => (await pixelsOf(page, '[data-testid="vnc-screen"] canvas')).lit > 200, 30_000, 250);
  });

  step("paste text as keystrokes: it runs in the guest's shell and shows progress", async () => {
    const marker = `PASTE-E2E-${Date.now()}`;
    await page.getByTestId("paste-text").fill(`echo ${marker} > /dev/ttyS0`);
    await page.getByTestId("paste-enter").check();
    await page.getByRole("button", { name: "Type into guest" }).click();
    await page.locator('[data-testid="task"][data-state="succeeded"]').waitFor({ timeout: 60_000 });
    await waitFor("the pasted command to run", () => serialLog().includes(marker), 30_000);
    const task = await stack.database.db.task.findFirstOrThrow({ where: { kind: "paste" } });
    assert.equal(task.state, "succeeded");
    // A character the guest's layout has no key for is named before anything is sent.
    await page.getByTestId("paste-text").fill("echo ünïcödé ✓");
    await page.getByTestId("paste-warning").waitFor();
    assert.match(await page.getByTestId("paste-warning").innerText(), /✓/);
    assert.equal(await page.getByRole("button", { name: "Type into guest" }).isDisabled(), true);
    await page.getByTestId("paste-text").fill("");
  });

  step("keys written straight onto the websocket of a full session do reach the guest (the control)", async () => {
    const marker = `rawkeys-${Date.now()}`;
    await injectKeys(page, `echo ${marker} >/dev/ttyS0`);
    await waitFor("the injected command to run", () => serialLog().includes(marker), 30_000);
  });

  step("the serial console: it shows what the guest printed before, then runs a command and shows its output", async () => {
    const earlier = serialLog().match(/rawkeys-\d+/g)?.at(-1);
    assert.ok(earlier, "the guest printed a marker on its serial port earlier, while nobody watched it");
    await page.goto(`${stack.baseUrl}/guests/${guestId}/serial`);
    await page.locator('[data-testid="serial-state"][data-state="connected"]').waitFor();
    await waitFor("the earlier output in the terminal", async () => (await page.locator(".xterm-rows").innerText()).includes(earlier), 10_000, 250);
    await page.getByTestId("serial-terminal").click();
    await page.keyboard.type("echo SERIAL-$((6*7))-OK");
    await page.keyboard.press("Enter");
    // The output, not the echo of the command line: the shell did the arithmetic.
    await waitFor("the command's output in the terminal", async () => (await page.locator(".xterm-rows").innerText()).includes("SERIAL-42-OK"), 30_000, 250);
    assert.match(await page.getByTestId("serial-size").innerText(), /stty rows \d+ cols \d+/);
  });

  step("reused, expired and wrong-kind tickets are refused at the websocket upgrade", async () => {
    const cookies = await browser.context.cookies(stack.baseUrl);
    const cookie = cookies.map((c) => `${c.name}=${c.value}`).join("; ");
    const origin = stack.baseUrl;
    const user = await stack.database.db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const attempt = (kindPath: string, ticket: string, headers: Record<string, string> = { cookie, origin }) =>
      upgradeStatus(`ws://127.0.0.1:${stack.port}/ws/${kindPath}/${guestId}?ticket=${encodeURIComponent(ticket)}`, headers);

    for (const [kind, kindPath] of [["vnc", "console"], ["serial", "serial"]] as const) {
      const fresh = await mintTicket(stack.database.db, user.id, guestId, new Date(), { kind });
      assert.equal(await attempt(kindPath, fresh.ticket), 101, `a fresh ${kind} ticket`);
      assert.equal(await attempt(kindPath, fresh.ticket), 401, `the same ${kind} ticket again`);
      const expired = await mintTicket(stack.database.db, user.id, guestId, new Date(Date.now() - 31_000), { kind });
      assert.equal(await attempt(kindPath, expired.ticket), 401, `an expired ${kind} ticket`);
    }
    const serial = await mintTicket(stack.database.db, user.id, guestId, new Date(), { kind: "serial" });
    assert.equal(await attempt("console", serial.ticket), 401, "a serial ticket on the screen's path");
    const vnc = await mintTicket(stack.database.db, user.id, guestId, new Date(), { kind: "vnc" });
    assert.equal(await attempt("serial", vnc.ticket), 401, "a screen ticket on the serial path");
    const noSession = await mintTicket(stack.database.db, user.id, guestId);
    assert.equal(await attempt("console", noSession.ticket, { origin }), 401, "a user's ticket without the user's session");
  });

  step("a view-only link shows the screen to someone not logged in; nothing typed there reaches the guest", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}/console`);
    await page.fill('input[name="share-label"]', "e2e viewer");
    await page.selectOption('select[name="share-duration"]', "1h");
    await page.getByRole("button", { name: "Create link" }).click();
    shareUrl = await page.getByTestId("share-url").inputValue();
    assert.match(shareUrl, new RegExp(`^${stack.baseUrl}/share/[A-Za-z0-9_-]{43}$`));
    const token = shareUrl.split("/").pop()!;
    const row = await stack.database.db.consoleShare.findUniqueOrThrow({ where: { id: hashSecret(token) } });
    assert.equal(row.guestId, guestId);

    stranger = await launchBrowser();
    await stranger.context.addInitScript(KEEP_CONSOLE_SOCKETS);
    sharedPage = await stranger.context.newPage();
    sharedPage.setDefaultTimeout(30_000);
    await sharedPage.goto(`${stack.baseUrl}/`);
    assert.match(new URL(sharedPage.url()).pathname, /^\/login$/, "the stranger is not logged in");
    await sharedPage.goto(shareUrl);
    await sharedPage.locator('[data-testid="console-state"][data-state="connected"]').waitFor();
    await waitFor("the shared screen", async () => (await pixelsOf(sharedPage!, '[data-testid="vnc-screen"] canvas')).lit > 200, 30_000, 250);
    assert.equal(await sharedPage.getByRole("button", { name: "Ctrl-Alt-Del" }).count(), 0, "no key buttons on a shared screen");

    // Typing as a person would (noVNC is view-only here), then as a hostile page would:
    // RFB key events written straight onto the websocket. The bridge drops both.
    const typed = `viewonly-typed-${Date.now()}`;
    await sharedPage.locator('[data-testid="vnc-screen"] canvas').click();
    for (const ch of `echo ${typed} >/dev/ttyS0`) {
      if (ch === ">") await sharedPage.keyboard.press("Shift+Period");
      else if (/[A-Z]/.test(ch)) await sharedPage.keyboard.press(`Shift+Key${ch}`);
      else await sharedPage.keyboard.type(ch);
    }
    await sharedPage.keyboard.press("Enter");
    const injected = `viewonly-raw-${Date.now()}`;
    await injectKeys(sharedPage, `echo ${injected} >/dev/ttyS0`, "qemu");
    const plain = `viewonly-plain-${Date.now()}`;
    await injectKeys(sharedPage, `echo ${plain} >/dev/ttyS0`, "plain");
    // Give the guest ample time to have run it, had it been typed.
    const control = `after-viewonly-${Date.now()}`;
    await injectKeys(page, `echo ${control} >/dev/ttyS0`);
    await waitFor("the owner's command (typed after the viewer's)", () => serialLog().includes(control), 30_000);
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok(!serialLog().includes(typed), "typing on the shared page reached the guest");
    assert.ok(!serialLog().includes(injected), "QEMU key events written by the shared page reached the guest");
    assert.ok(!serialLog().includes(plain), "RFB KeyEvents written by the shared page reached the guest");
    assert.equal(await consoleState(sharedPage), "connected", "the viewer still watches");
  });

  step("the owner sees who else is connected", async () => {
    const viewers = page.getByTestId("console-viewers");
    await waitFor("the share viewer in the list", async () => /e2e viewer.*view only/s.test(await viewers.innerText().catch(() => "")), 20_000, 500);
    assert.match(await viewers.innerText(), new RegExp(stack.admin.username));
  });

  step("a viewer of the team watches the screen view-only, enforced by the server; the pages offer them nothing more", async () => {
    const db = stack.database.db;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const viewer = await db.user.create({ data: { username: "team-viewer", passwordHash: "x", role: "member", teamId: admin.teamId, memberships: { create: { teamId: admin.teamId, role: "viewer" } } } });
    const watcher = await launchBrowser();
    try {
      await watcher.context.addInitScript(KEEP_CONSOLE_SOCKETS);
      await watcher.context.addCookies([{ name: SESSION_COOKIE, value: (await createSession(db, viewer.id)).secret, url: stack.baseUrl }]);
      const p = await watcher.context.newPage();
      p.setDefaultTimeout(30_000);
      // The guest page: seen, with no power buttons, no hardware editing.
      await p.goto(`${stack.baseUrl}/guests/${guestId}`);
      assert.equal(await p.getByTestId("guest-name").innerText(), GUEST);
      assert.equal(await p.getByRole("button", { name: "Shut down" }).count(), 0);
      assert.equal(await p.getByRole("link", { name: "Edit hardware" }).count(), 0);
      // The console: connected, view-only without a switch.
      await p.goto(`${stack.baseUrl}/guests/${guestId}/console`);
      await p.locator('[data-testid="console-state"][data-state="connected"]').waitFor();
      await waitFor("the viewer's screen", async () => (await pixelsOf(p, '[data-testid="vnc-screen"] canvas')).lit > 200, 30_000, 250);
      assert.equal(await p.getByTestId("console-view-only").count(), 0, "no view-only switch to turn off");
      // RFB key events written straight onto the websocket, as a hostile page would: dropped by the bridge.
      const injected = `viewer-raw-${Date.now()}`;
      await injectKeys(p, `echo ${injected} >/dev/ttyS0`, "plain");
      const control = `after-viewer-${Date.now()}`;
      await injectKeys(page, `echo ${control} >/dev/ttyS0`);
      await waitFor("the owner's command (typed after the viewer's)", () => serialLog().includes(control), 30_000);
      assert.ok(!serialLog().includes(injected), "keys from a viewer reached the guest");
      // A ticket for the full console is refused to a viewer, at the action and at the bridge.
      const full = await mintTicket(db, viewer.id, guestId, new Date(), { kind: "vnc", viewOnly: false });
      const cookie = `${SESSION_COOKIE}=${(await createSession(db, viewer.id)).secret}`;
      assert.equal(await upgradeStatus(`${stack.baseUrl.replace("http", "ws")}/ws/console/${guestId}?ticket=${full.ticket}`, { cookie, origin: stack.baseUrl }), 404);
      const serial = await fetch(`${stack.baseUrl}/guests/${guestId}/serial-log`, { headers: { cookie } });
      assert.equal(serial.status, 403, "the serial log is for who may operate the guest");
    } finally {
      await watcher.close();
    }
  });

  step("a revoked link is refused: the watching page is cut off, the page and the bridge refuse it", async () => {
    const token = shareUrl.split("/").pop()!;
    const shareId = hashSecret(token);
    await page.locator(`[data-testid="share-link"][data-state="active"]`).getByRole("button", { name: "Revoke" }).click();
    await page.locator(`[data-testid="share-link"][data-state="revoked"]`).waitFor();
    await sharedPage!.locator('[data-testid="console-state"][data-state="disconnected"]').waitFor({ timeout: 20_000 });
    assert.match(await sharedPage!.getByTestId("console-reason").innerText(), /revoked/);
    await sharedPage!.reload();
    await sharedPage!.getByTestId("share-refused").waitFor();
    assert.equal(await sharedPage!.getByTestId("share-refused").getAttribute("data-reason"), "revoked");

    const ticket = await mintShareTicket(stack.database.db, shareId, guestId);
    const status = await upgradeStatus(`ws://127.0.0.1:${stack.port}/ws/console/${guestId}?ticket=${ticket.ticket}`, { origin: stack.baseUrl });
    assert.equal(status, 403, "a ticket of a revoked link");
    const ended = await stack.database.db.consoleSession.findFirstOrThrow({ where: { shareId }, orderBy: { startedAt: "desc" } });
    assert.ok(ended.endedAt, "the share viewer's session was ended");
    assert.match(ended.endReason ?? "", /revoked/);
  });

  step("the guest page lists the recent console sessions", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
    const sessions = page.getByTestId("console-sessions");
    await sessions.waitFor();
    const text = await sessions.innerText();
    assert.match(text, /serial console/);
    assert.match(text, /view-only link “e2e viewer”/);
    assert.match(text, new RegExp(`${stack.admin.username}\\s+screen`));
    assert.ok((await page.getByTestId("console-session").count()) >= 3);
  });

  step("the serial log can be read and downloaded after the guest stopped", async () => {
    await page.getByRole("button", { name: "Force off" }).click();
    await page.locator('[data-testid="guest-state"][data-state="stopped"]').waitFor();
    const res = await page.request.get(`${stack.baseUrl}/guests/${guestId}/serial-log`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-type"] ?? "", /^text\/plain/);
    assert.match(res.headers()["content-disposition"] ?? "", /^attachment; filename="e2e-console-serial\.log"$/);
    const log = await res.text();
    assert.match(log, /GUESTHOUSE-DEMO-REBOOT/);
    assert.match(log, /PASTE-E2E-\d+/);
    assert.equal((await fetch(`${stack.baseUrl}/guests/${guestId}/serial-log`)).status, 401, "the log needs a login");
    // The list shows a placeholder instead of a picture now.
    await page.goto(`${stack.baseUrl}/`);
    const row = page.locator(`[data-testid="guest-row"][data-guest="${GUEST}"]`);
    await row.getByTestId("guest-thumbnail-placeholder").waitFor();
    assert.equal(await row.getByTestId("guest-thumbnail").count(), 0);
  });

  step("no page broke the Content-Security-Policy (noVNC, xterm.js and Next run under it)", () => {
    assert.deepEqual(browser.cspViolations(), []);
  });
});

