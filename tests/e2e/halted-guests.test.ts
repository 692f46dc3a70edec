/**
 * What a person sees when the host or QEMU stops a guest, in Debian's Chromium against
 * the real web server, agent and database: on a host whose KVM fails on guest code
 * (played for the probe by a stand-in QEMU; guests run on the real one) the guest list
 * says TCG and why; a guest whose kernel panics is shown as halted on the list, the
 * guest page and the console page, with the end of QEMU's log and only the actions
 * that can help, and a Reset from the console page brings it back.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, afterEach, before } from "node:test";
import type { Page } from "playwright-core";
import { waitFor } from "../helpers/agent";
import { launchBrowser, logIn, screenshotStep, submitNewGuest } from "../helpers/browser";
import { fakeQemu } from "../helpers/fake-qemu";
import { SerialShell } from "../helpers/serial-shell";
import { startTestStack, type TestStack } from "../helpers/web";
import { story } from "../helpers/story";

const GUEST = "e2e-panic";

story("halted guests and a failing KVM, in the browser", (step) => {
  let dir: string;
  let stack: TestStack;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let guestId = "";
  let serial: SerialShell | undefined;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-halt-"));
    const bin = fakeQemu(path.join(dir, "bin"), "emulation-failure");
    stack = await startTestStack({ agentEnv: { PATH: `${bin}:${process.env.PATH}`, GUESTHOUSE_ACCEL: "auto", GUESTHOUSE_ACCEL_CACHE: path.join(dir, "accelerator.json") } });
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await logIn(page, stack.baseUrl, stack.admin);
  });
  afterEach(async (t) => screenshotStep("halted", t.name, [page]));
  after(async () => {
    serial?.close();
    await browser?.close();
    await stack?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  step("the guest list says the host runs guests under TCG, and why", async () => {
    await page.goto(`${stack.baseUrl}/`);
    const accelerator = page.getByTestId("accelerator");
    assert.equal(await accelerator.textContent(), "TCG (software emulation, slower)");
    assert.match(await page.getByTestId("host-info").textContent() ?? "", /KVM stopped with an emulation failure while running test code/);
  });

  step("a guest whose kernel panics is halted on the list, not running, with why", async () => {
    await page.goto(`${stack.baseUrl}/guests/new`);
    await submitNewGuest(page, { name: GUEST, diskGiB: 0, iso: "demo.iso" });
    guestId = new URL(page.url()).pathname.split("/").pop()!;
    await page.getByRole("button", { name: "Start", exact: true }).click();
    await page.locator('[data-testid="guest-state"][data-state="running"]').waitFor();
    serial = await SerialShell.open(stack.agent, guestId);
    serial.send("echo c > /proc/sysrq-trigger");
    await waitFor("the agent to see the panic", async () => (await stack.agent.client.guest(guestId)).state === "guest-panicked");

    await page.goto(`${stack.baseUrl}/`);
    const row = page.locator(`[data-testid="guest-row"][data-guest="${GUEST}"]`);
    assert.equal(await row.getByTestId("guest-state").getAttribute("data-state"), "guest-panicked");
    assert.equal(await row.getByTestId("guest-state").textContent(), "halted: guest panicked");
    assert.match(await row.getByTestId("halt-notice").textContent() ?? "", /The guest's operating system panicked/);
  });

  step("the guest page explains it, shows QEMU's log, and offers reset, force off and start again, but not pause or shut down", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
    const notice = page.getByTestId("halt-notice");
    assert.match(await notice.locator("h2").textContent() ?? "", /The guest's operating system panicked/);
    const logTail = (await stack.agent.client.guest(guestId)).logTail;
    assert.equal(await page.getByTestId("halt-log").textContent(), logTail || "(empty)", "the end of QEMU's log is on the page");
    for (const offered of ["Reset", "Force off", "Start again", "Console"]) {
      assert.equal(await page.getByRole(offered === "Console" ? "link" : "button", { name: offered, exact: true }).count(), 1, `${offered} is offered`);
    }
    for (const withheld of ["Pause", "Shut down", "Reboot", "Resume", "Start"]) {
      assert.equal(await page.getByRole("button", { name: withheld, exact: true }).count(), 0, `${withheld} is not offered`);
    }
  });

  step("the console page says so above the frozen screen, and its Reset brings the guest back", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}/console`);
    await page.getByTestId("halt-notice").waitFor();
    await page.getByRole("button", { name: "Reset", exact: true }).click();
    await page.locator('[data-testid="halt-notice"]').waitFor({ state: "detached", timeout: 30_000 });
    assert.equal((await stack.agent.client.guest(guestId)).state, "running");
    await waitFor("the guest to boot again", () => serial!.log().split("GUESTHOUSE-DEMO-READY").length - 1 >= 2, 90_000);
  });
});
