/** Debian's Chromium, driven by playwright-core, with a fresh profile per test file. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

const CHROMIUM = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"].find((p) => fs.existsSync(p));
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A fresh browser. `cspViolations()` lists what any of its pages reported as refused by
 * the Content-Security-Policy so far: a test asserts it is empty.
 */
export async function launchBrowser(): Promise<{ context: BrowserContext; cspViolations(): string[]; close(): Promise<void> }> {
  if (!CHROMIUM) throw new Error("Chromium is not installed: scripts/setup.sh --test installs it.");
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "gh-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: FLAGS,
    headless: true,
    viewport: { width: 1280, height: 900 },
  });
  const violations: string[] = [];
  context.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|Content-Security-Policy/i.test(text)) violations.push(`${message.page()?.url() ?? "?"}: ${text}`);
  });
  return {
    context,
    cspViolations: () => [...violations],
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Logs the page in through the login form, as a person would, and waits for the guest list. */
export async function logIn(page: Page, baseUrl: string, who: { username: string; password: string }): Promise<void> {
  await page.goto(`${baseUrl}/login`);
  await page.fill('input[name="username"]', who.username);
  await page.fill('input[name="password"]', who.password);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${baseUrl}/`, { waitUntil: "commit" });
}

/**
 * A screenshot of each open page after a test step, for whoever has to read a failure:
 * `.cache/e2e/<prefix>-<step>.png`, then `-2`, `-3`… for further pages.
 */
export async function screenshotStep(prefix: string, step: string, pages: Array<Page | null | undefined>): Promise<void> {
  fs.mkdirSync(".cache/e2e", { recursive: true });
  const name = `${prefix}-${step.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}`;
  for (const [i, page] of pages.entries()) {
    if (!page || page.isClosed()) continue;
    await page.screenshot({ path: `.cache/e2e/${name}${i === 0 ? "" : `-${i + 1}`}.png` }).catch(() => {});
  }
}

/**
 * Fills the new-guest form the page is on (1 vCPU, 256 MiB, booting the ISO) and submits
 * it; resolves once the browser is on the new guest's page.
 */
export async function submitNewGuest(page: Page, guest: { name: string; diskGiB: number; iso: string }): Promise<void> {
  await page.fill('input[name="name"]', guest.name);
  await page.fill('input[name="vcpus"]', "1");
  await page.fill('input[name="memoryMiB"]', "256");
  await page.fill('input[name="diskGiB"]', String(guest.diskGiB));
  await page.selectOption('select[name="iso"]', guest.iso);
  await page.selectOption('select[name="boot"]', "cdrom");
  await page.click('button[type="submit"]');
  await page.waitForURL(/\/guests\/(?!new$)[a-z0-9]+$/, { waitUntil: "commit" });
}
