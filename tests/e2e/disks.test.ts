/**
 * Disk images end to end in Debian's Chromium: upload an ISO through the page (the
 * progress bar reaches 100 %, the SHA-256 is the file's), create a guest from it, grow
 * its disk (the guest sees the new size), take a live snapshot and revert to it (the
 * guest's memory goes back too), and see it all on the tasks page, where an upload
 * another client is sending can be cancelled.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, afterEach, before } from "node:test";
import type { Page } from "playwright-core";
import { createSession, SESSION_COOKIE } from "../../server/auth/sessions";
import { DEMO_ISO, waitFor, within } from "../helpers/agent";
import { launchBrowser, logIn, screenshotStep, submitNewGuest } from "../helpers/browser";
import { startTestStack, type TestStack } from "../helpers/web";
import { guestSerialLog } from "../helpers/serial-shell";
import { story } from "../helpers/story";

const GUEST = "e2e-disks";
const ISO = "uploaded-demo.iso";

story("disk images in Chromium", (step) => {
  let stack: TestStack;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let guestId = "";
  let diskId = "";
  let tmp = "";
  const serialLog = () => guestSerialLog(stack.agent, guestId);
  /** Types one line into the guest's serial shell. */
  const typeSerial = async (line: string) => {
    const serial = net.createConnection({ path: path.join(stack.agent.dataDir, "run", guestId, "serial.sock") });
    await new Promise((resolve, reject) => serial.once("connect", resolve).once("error", reject));
    // Ends the connection after the line: QEMU reads it all, then closes its side.
    serial.resume();
    await new Promise((resolve) => {
      serial.once("close", resolve);
      serial.end(`${line}\n`);
    });
  };

  before(async () => {
    stack = await startTestStack();
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
    page.on("dialog", (dialog) => void dialog.accept());
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gh-e2e-disks-"));
    fs.copyFileSync(DEMO_ISO, path.join(tmp, ISO));
    await logIn(page, stack.baseUrl, stack.admin);
  });
  afterEach((t) => screenshotStep("disks", t.name, [page]));
  after(async () => {
    await browser?.close();
    await stack?.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  step("upload an ISO: the progress bar reaches 100 % and the SHA-256 is the file's", async () => {
    await page.goto(`${stack.baseUrl}/disks`);
    await page.getByLabel("Image or ISO file").setInputFiles(path.join(tmp, ISO));
    assert.match(await page.getByTestId("upload-target").innerText(), /ISO/i);
    // Record every value the progress bar shows.
    await page.evaluate(() => {
      const seen: number[] = [];
      (window as unknown as { progressSeen: number[] }).progressSeen = seen;
      new MutationObserver(() => {
        for (const bar of document.querySelectorAll('[data-testid="upload-progress"] [role="progressbar"]')) {
          seen.push(Number(bar.getAttribute("aria-valuenow")));
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["aria-valuenow"] });
    });
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await page.getByTestId("upload-done").waitFor({ timeout: 60_000 });
    const seen = await page.evaluate(() => (window as unknown as { progressSeen: number[] }).progressSeen);
    assert.ok(seen.some((v) => v < 100), `the bar showed the upload under way (saw ${[...new Set(seen)].join(", ")})`);
    assert.equal(Math.max(...seen), 100, `the progress bar reached 100 % (saw ${[...new Set(seen)].join(", ")})`);
    const expected = createHash("sha256").update(fs.readFileSync(DEMO_ISO)).digest("hex");
    assert.equal(await page.getByTestId("upload-sha256").innerText(), expected);
    assert.deepEqual(fs.readFileSync(path.join(stack.agent.dataDir, "images", ISO)), fs.readFileSync(DEMO_ISO));
    const row = await stack.database.db.isoImage.findFirstOrThrow({ where: { name: ISO } });
    assert.equal(row.sha256, expected);
    await page.reload();
    const listed = page.locator(`[data-testid="iso-row"][data-iso="${ISO}"]`);
    await listed.waitFor();
    assert.match(await listed.innerText(), new RegExp(`${expected.slice(0, 16)}.*not in use`, "s"));
  });

  step("create a guest from the uploaded ISO", async () => {
    await page.goto(`${stack.baseUrl}/guests/new`);
    await submitNewGuest(page, { name: GUEST, diskGiB: 1, iso: ISO });
    const guest = await stack.database.db.guest.findFirstOrThrow({ where: { name: GUEST }, include: { disks: true } });
    guestId = guest.id;
    diskId = guest.disks[0]!.id;
    assert.match(await page.getByTestId("command-line").innerText(), new RegExp(ISO.replace(".", "\\.")));
  });

  step("grow its disk on the disk page while the guest is stopped; the guest boots and sees 2 GiB", async () => {
    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
    await page.getByRole("link", { name: /^e2e-disks-.*\.qcow2$/ }).click();
    await page.waitForURL(`${stack.baseUrl}/disks/${diskId}`, { waitUntil: "commit" });
    assert.equal(await page.getByTestId("image-size").innerText(), "1 GiB");
    const resize = page.getByRole("form", { name: "Resize" });
    await resize.locator('input[name="size"]').fill("2G");
    await resize.getByRole("button", { name: "Resize" }).click();
    await page.locator('[data-testid="image-size"]', { hasText: "2 GiB" }).waitFor();

    await page.goto(`${stack.baseUrl}/guests/${guestId}`);
    await page.getByRole("button", { name: "Start", exact: true }).click();
    await page.locator('[data-testid="guest-state"][data-state="running"]').waitFor();
    await waitFor("the guest to boot", () => serialLog().includes("demo:~# "), 90_000);
    assert.match(serialLog(), /GUESTHOUSE-DISK vda 4194304/, "the guest sees 2 GiB (4194304 sectors)");
  });

  step("grow it again while the guest runs; the guest sees the new size at once", async () => {
    await page.goto(`${stack.baseUrl}/disks/${diskId}`);
    const resize = page.getByRole("form", { name: "Resize" });
    await resize.locator('input[name="size"]').fill("3G");
    await resize.getByRole("button", { name: "Resize" }).click();
    await page.locator('[data-testid="image-size"]', { hasText: "3 GiB" }).waitFor();
    await typeSerial("echo LIVE-SIZE-$(cat /sys/block/vda/size)");
    await waitFor("the guest to report its disk size", () => serialLog().includes("LIVE-SIZE-6291456"), 30_000);
  });

  step("take a live snapshot and revert to it: the guest's memory goes back too", async () => {
    await typeSerial("echo BEFORE > /tmp/state && echo SNAP-READY-$((40+2))");
    await waitFor("the guest to write its state", () => serialLog().includes("SNAP-READY-42"), 30_000);
    const form = page.getByRole("form", { name: "Take snapshot" });
    await form.locator('input[name="name"]').fill("before");
    await form.getByRole("button", { name: "Take snapshot" }).click();
    const row = page.locator('[data-testid="snapshot"][data-name="before"]');
    await row.waitFor({ timeout: 120_000 });
    assert.doesNotMatch(await row.innerText(), /disk only/, "a live snapshot saves the memory");

    await typeSerial("echo AFTER > /tmp/state && echo CHANGED-$((50+5))");
    await waitFor("the guest to change its state", () => serialLog().includes("CHANGED-55"), 30_000);
    await row.getByRole("button", { name: "Revert" }).click();
    await waitFor("the revert to finish", async () => {
      const tasks = await stack.database.db.task.findMany({ where: { kind: "snapshot", title: { startsWith: "revert" } } });
      return tasks.some((t) => t.state === "succeeded");
    }, 120_000);
    await typeSerial("echo STATE-NOW-$(cat /tmp/state)");
    await waitFor("the guest to report its state after the revert", () => /STATE-NOW-(BEFORE|AFTER)/.test(serialLog()), 30_000);
    assert.match(serialLog(), /STATE-NOW-BEFORE/, "the guest's memory (its tmpfs) is back to the snapshot");
  });

  step("converting or deleting a disk a running guest uses is refused, naming why", async () => {
    await page.goto(`${stack.baseUrl}/disks/${diskId}`);
    const convert = page.getByRole("form", { name: "Convert" });
    await convert.getByRole("button", { name: "Convert" }).click();
    await page.getByTestId("convert-error").waitFor();
    assert.match(await page.getByTestId("convert-error").innerText(), /in use by e2e-disks|stop the guest/);
    await page.getByRole("button", { name: "Delete disk" }).click();
    await page.getByTestId("delete-error").waitFor();
    assert.match(await page.getByTestId("delete-error").innerText(), /attached to e2e-disks/);
  });

  step("an ISO a guest uses cannot be deleted; the refusal names the guest", async () => {
    await page.goto(`${stack.baseUrl}/disks`);
    const listed = page.locator(`[data-testid="iso-row"][data-iso="${ISO}"]`);
    assert.match(await listed.innerText(), /CD-ROM of e2e-disks/);
    await listed.getByRole("button", { name: "Delete" }).click();
    await page.getByTestId("iso-error").waitFor();
    assert.match(await page.getByTestId("iso-error").innerText(), /CD-ROM of e2e-disks/);
    assert.ok(fs.existsSync(path.join(stack.agent.dataDir, "images", ISO)), "the ISO is still there");
  });

  step("the tasks page lists the upload, the resizes and the snapshots with who did them", async () => {
    await page.goto(`${stack.baseUrl}/tasks`);
    const rows = page.getByTestId("task-row");
    await rows.first().waitFor();
    const text = await page.locator("table").innerText();
    for (const kind of [/upload .*uploaded-demo\.iso/, /resize .* to 2G/, /resize .* to 3G/, /create snapshot before/, /revert snapshot before/]) {
      assert.match(text, kind);
    }
    assert.equal(await page.locator('[data-testid="task-row"][data-state="failed"]').count(), 0);
  });

  step("an image an admin put in the storage folder is imported; one based on a host file is shown with why, and cannot be", async () => {
    const folder = path.join(stack.agent.dataDir, "disks");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", path.join(folder, "found.qcow2"), "3G"]);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", "/etc/hostname", "-F", "raw", path.join(folder, "found-evil.qcow2"), "1G"]);
    try {
      await page.goto(`${stack.baseUrl}/disks`);
      const evil = page.locator('[data-testid="unregistered"][data-file="found-evil.qcow2"]');
      assert.match(await evil.innerText(), /is based on "hostname", which is not an image in this host's storage folders/);
      assert.equal(await evil.getByRole("button", { name: "Import" }).count(), 0);
      await page.locator('[data-testid="unregistered"][data-file="found.qcow2"]').getByRole("button", { name: "Import" }).click();
      await page.waitForURL(/\/disks\/[^/]+$/);
      assert.equal(await page.getByTestId("disk-name").innerText(), "found.qcow2");
      const disk = await stack.database.db.disk.findFirstOrThrow({ where: { file: "found.qcow2" }, include: { owner: true } });
      assert.equal(disk.format, "qcow2");
      assert.equal(disk.sizeBytes, 3n * 2n ** 30n);
      assert.equal(disk.owner.username, stack.admin.username);
    } finally {
      fs.rmSync(path.join(folder, "found-evil.qcow2"), { force: true });
    }
  });

  step("an upload another client is sending is cancelled from the tasks page: the sender is told, nothing is kept", async () => {
    const db = stack.database.db;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const cookie = `${SESSION_COOKIE}=${(await createSession(db, admin.id)).secret}`;
    const size = 64 * 2 ** 20;
    // A client (a second tab, another machine) that sends the first MiB and then stalls.
    const req = http.request(`${stack.baseUrl}/upload/isos/cancel-me.iso?size=${size}`, {
      method: "PUT",
      headers: { cookie, origin: stack.baseUrl, "content-length": String(size) },
    });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on("response", (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
    });
    try {
      req.write(Buffer.alloc(2 ** 20, 7));
      const part = path.join(stack.agent.dataDir, "images", "cancel-me.iso.part");
      await waitFor("the upload to start writing", () => fs.existsSync(part), 30_000);
      const task = await db.task.findFirstOrThrow({ where: { kind: "upload", target: "isos/cancel-me.iso", state: "running" } });

      await page.goto(`${stack.baseUrl}/tasks`);
      const bar = page.locator(`[data-testid="task"][data-task="${task.id}"]`);
      assert.match(await bar.innerText(), /upload isos\/cancel-me\.iso/);
      const percent = async () => Number(await bar.getByRole("progressbar").getAttribute("aria-valuenow"));
      assert.ok((await percent()) < 10, `the bar starts near the start (${await percent()} %)`);
      // The bar follows the upload without a reload.
      await within("40 MiB more to be taken", new Promise<void>((resolve) => req.write(Buffer.alloc(40 * 2 ** 20, 7), () => resolve())));
      await waitFor("the bar to move past 50 % by itself", async () => (await percent()) >= 50, 15_000);
      await bar.getByRole("button", { name: "Cancel" }).click();

      const { status, body } = await within("the sender's answer", answer);
      assert.equal(status, 409, `the sender is told the upload was cancelled: ${body}`);
      assert.match(body, /cancelled/);
      const row = await waitFor("the task to be recorded as cancelled", async () => {
        const r = await db.task.findUniqueOrThrow({ where: { id: task.id } });
        return r.state === "cancelled" ? r : null;
      });
      assert.ok(row.finishedAt, "the cancelled task has an end time");
      // The web hears of the cancel as soon as the agent cuts the upload off; the agent's own
      // task ends once it has removed what the upload wrote.
      await waitFor("the agent's upload task to end cancelled", async () =>
        (await stack.agent.client.tasks()).some((t) => t.kind === "upload" && t.targets.includes("isos/cancel-me.iso") && t.state === "cancelled"),
      );
      assert.equal(fs.existsSync(part), false, "the part written so far was removed");
      assert.equal(fs.existsSync(path.join(stack.agent.dataDir, "images", "cancel-me.iso")), false);
      assert.equal(await db.isoImage.count({ where: { name: "cancel-me.iso" } }), 0);
      await page.reload();
      assert.equal(await page.locator(`[data-testid="task-row"][data-state="cancelled"]`).filter({ hasText: "cancel-me.iso" }).count(), 1);
    } finally {
      req.destroy();
    }
  });

  step("an interrupted upload is listed on the disks page with when it goes, and its Remove button removes it", async () => {
    const db = stack.database.db;
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const cookie = `${SESSION_COOKIE}=${(await createSession(db, admin.id)).secret}`;
    const size = 8 * 2 ** 20;
    const req = http.request(`${stack.baseUrl}/upload/default/left-behind.raw?size=${size}`, {
      method: "PUT",
      headers: { cookie, origin: stack.baseUrl, "content-length": String(size) },
    });
    req.on("error", () => {}); // broken off below, on purpose
    req.write(Buffer.alloc(2 ** 20, 3));
    const part = path.join(stack.agent.dataDir, "disks", "left-behind.raw.part");
    await waitFor("the upload to write", () => fs.existsSync(part) && fs.statSync(part).size > 0, 30_000);
    req.destroy(); // the browser tab closed
    await waitFor("the upload to end interrupted", async () => (await db.task.findFirst({ where: { target: "default/left-behind.raw" } }))?.state === "failed", 15_000);

    await page.goto(`${stack.baseUrl}/disks`);
    const row = page.locator('[data-testid="upload-part"][data-file="left-behind.raw"]');
    assert.match(await row.innerText(), new RegExp(`left-behind\\.raw in default · .* so far · by ${stack.admin.username} · last written .*\\bremoved \\d`, "s"));
    await row.getByRole("button", { name: "Remove" }).click();
    await row.waitFor({ state: "detached" });
    assert.equal(fs.existsSync(part), false, "the part is gone");
    const task = await db.task.findFirstOrThrow({ where: { target: "default/left-behind.raw" } });
    assert.equal(task.state, "cancelled", "its record no longer offers resuming");
  });

  step("no page broke the Content-Security-Policy (noVNC, xterm.js and Next run under it)", () => {
    assert.deepEqual(browser.cspViolations(), []);
  });
});
