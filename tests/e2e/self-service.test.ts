/**
 * Team self-service in Debian's Chromium, as people use the pages: a member hits their
 * team's disk space quota, follows "Ask for more" from the refusal to a filled-in request,
 * an admin approves it on the Quotas page, and the member's next disk is made; the usage
 * bars say so. Two-factor login: set up on the account page by scanning (here: reading)
 * the key, then asked for at the next login; a team that requires it holds a member
 * without one at the account page.
 */
import assert from "node:assert/strict";
import { after, afterEach, before } from "node:test";
import type { Page } from "playwright-core";
import { hashPassword } from "../../server/auth/password";
import { totpCode, TOTP_PERIOD_S } from "../../server/auth/totp";
import { waitFor } from "../helpers/agent";
import { launchBrowser, logIn, screenshotStep } from "../helpers/browser";
import { story } from "../helpers/story";
import { startTestStack, type TestStack } from "../helpers/web";

const PASSWORD = "mia's own password";

story("team self-service in Chromium: quotas and two-factor login", (step) => {
  let stack: TestStack;
  let adminBrowser: Awaited<ReturnType<typeof launchBrowser>>;
  let memberBrowser: Awaited<ReturnType<typeof launchBrowser>>;
  let admin: Page;
  let mia: Page;
  let teamId = "";
  const db = () => stack.database.db;

  before(async () => {
    stack = await startTestStack();
    const adminRow = await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    teamId = adminRow.teamId;
    await db().user.create({ data: { username: "mia", usernameKey: "mia", passwordHash: await hashPassword(PASSWORD), teamId, memberships: { create: { teamId, role: "member" } } } });
    await db().quota.create({ data: { teamId, resource: "diskBytes", limit: BigInt(2 * 2 ** 30) } });
    adminBrowser = await launchBrowser();
    memberBrowser = await launchBrowser();
    admin = await adminBrowser.context.newPage();
    mia = await memberBrowser.context.newPage();
    for (const p of [admin, mia]) p.setDefaultTimeout(30_000);
    await logIn(admin, stack.baseUrl, stack.admin);
    await logIn(mia, stack.baseUrl, { username: "mia", password: PASSWORD });
  });
  afterEach((t) => screenshotStep("self-service", t.name, [admin, mia]));
  after(async () => {
    await memberBrowser?.close();
    await adminBrowser?.close();
    await stack?.cleanup();
  });

  async function createDisk(name: string, size: string): Promise<void> {
    await mia.goto(`${stack.baseUrl}/disks`);
    const form = mia.getByRole("form", { name: "New disk" });
    await form.locator('input[name="file"]').fill(name);
    await form.locator('input[name="size"]').fill(size);
    await form.getByRole("button", { name: "Create disk" }).click();
  }

  step("a disk past the team's disk space is refused, naming the quota, its use and its limit, with a link to ask for more", async () => {
    await createDisk("first.qcow2", "1G");
    await mia.waitForURL(/\/disks\/[^/]+$/);
    await createDisk("second.qcow2", "3G");
    const refusal = mia.getByTestId("form-error");
    await refusal.waitFor();
    assert.match(await refusal.innerText(), /Your team's quota of disk space \(virtual sizes\) is 2 GiB: 1 GiB are in use and this needs 3 GiB more/);
    assert.equal(await db().disk.count({ where: { file: "second.qcow2" } }), 0, "nothing was made");
    await refusal.getByTestId("ask-for-more").click();
    await mia.waitForURL(/\/quotas\?/);
    const ask = mia.getByRole("form", { name: "Ask for more" });
    assert.equal(await ask.locator('select[name="resource"]').inputValue(), "diskBytes");
    assert.equal(await ask.locator('input[name="amount"]').inputValue(), String(4 * 2 ** 30), "the limit that would have let it through");
    await ask.locator('input[name="amount"]').fill("8G");
    await ask.locator('textarea[name="reason"]').fill("a build cache for the release");
    await ask.getByRole("button", { name: "Ask an admin" }).click();
    await mia.getByTestId("ask-sent").waitFor();
    assert.equal(await mia.getByTestId("my-request").getAttribute("data-state"), "open");
  });

  step("the admin sees the request and approves it; the limit changes, the member sees the answer and the usage bar", async () => {
    await admin.goto(`${stack.baseUrl}/quotas`);
    const request = admin.getByTestId("open-request");
    assert.match(await request.innerText(), /mia asks for 8 GiB of disk space \(virtual sizes\).*a build cache for the release/s);
    await request.getByRole("button", { name: "Approve" }).click();
    await waitFor("the request to leave the list", async () => (await admin.getByTestId("open-request").count()) === 0, 10_000, 200);
    assert.equal(Number((await db().quota.findFirstOrThrow({ where: { teamId, resource: "diskBytes" } })).limit), 8 * 2 ** 30);
    await mia.reload();
    assert.equal(await mia.getByTestId("my-request").getAttribute("data-state"), "approved");
    await createDisk("second.qcow2", "3G");
    await mia.waitForURL(/\/disks\/[^/]+$/);
    await mia.goto(`${stack.baseUrl}/quotas`);
    const bar = mia.locator('[data-testid="usage"][data-resource="diskBytes"]').first();
    assert.deepEqual([await bar.getAttribute("data-used"), await bar.getAttribute("data-limit")], [String(4 * 2 ** 30), String(8 * 2 ** 30)]);
    assert.match(await bar.innerText(), /4 GiB of 8 GiB/);
  });

  step("the team's owner hands the member's disk over to the admin on the disk's page; a viewer is no one to hand it to", async () => {
    const disk = await db().disk.findFirstOrThrow({ where: { file: "first.qcow2" } });
    await db().user.create({ data: { username: "vic", usernameKey: "vic", passwordHash: "x", teamId, memberships: { create: { teamId, role: "viewer" } } } });
    await admin.goto(`${stack.baseUrl}/disks/${disk.id}`);
    const form = admin.getByRole("form", { name: "Hand this disk over" });
    await form.getByLabel("New owner").fill("vic");
    await form.getByRole("button", { name: "Hand over" }).click();
    await waitFor("the refusal", async () => /viewer/.test((await form.getByTestId("hand-over-error").innerText().catch(() => "")) ?? ""), 10_000, 200);
    await form.getByLabel("New owner").fill(stack.admin.username.toUpperCase());
    await form.getByRole("button", { name: "Hand over" }).click();
    const admins = await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    await waitFor("the disk to change hands", async () => (await db().disk.findUniqueOrThrow({ where: { id: disk.id } })).ownerId === admins.id, 10_000, 200);
    assert.equal(await db().event.count({ where: { kind: "hand-over", ok: true } }), 1, "in the audit trail");
  });

  step("an API token made on the account page works against the API once, shown once, and stops at once when revoked", async () => {
    await mia.goto(`${stack.baseUrl}/account`);
    const form = mia.getByRole("form", { name: "New API token" });
    await form.getByLabel("Token's name").fill("ci job");
    await form.getByLabel("Token's scope").selectOption("operate");
    await form.getByRole("button", { name: "Make a token" }).click();
    const token = (await mia.getByTestId("new-token").locator("code").innerText()).trim();
    assert.match(token, /^gh_[\w-]{43}$/);
    const list = async () => fetch(`${stack.baseUrl}/api/v1/guests`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await list()).status, 200);
    await mia.reload();
    assert.equal(await mia.getByTestId("new-token").count(), 0, "not shown again");
    const row = mia.getByTestId("tokens").locator("tr", { hasText: "ci job" });
    assert.match(await row.innerText(), /operate/);
    await row.getByRole("button", { name: "Revoke" }).click();
    await waitFor("the token revoked", async () => (await list()).status === 401, 10_000, 200);
  });

  step("the API reference page renders every operation of the served document, offline, under the page's Content-Security-Policy", async () => {
    const refused: string[] = [];
    mia.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy/i.test(m.text())) refused.push(m.text());
    });
    await mia.goto(`${stack.baseUrl}/docs/api`);
    const reference = mia.getByTestId("api-reference");
    await reference.getByText("The guests the caller may see, in name order, a page at a time").waitFor({ timeout: 20_000 });
    const document = (await (await fetch(`${stack.baseUrl}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(document.paths).reduce((n, methods) => n + Object.keys(methods).length, 0);
    assert.equal(await reference.locator(".opblock").count(), operations, "one block per operation");
    assert.deepEqual(refused, [], "nothing blocked by the policy");
    // Served from this dashboard: nothing of the page came from elsewhere.
    assert.equal((await fetch(`${stack.baseUrl}/vendor/swagger-ui-dist/swagger-ui-bundle.js`)).status, 200);
    assert.match(await (await fetch(`${stack.baseUrl}/robots.txt`)).text(), /Disallow: \//);
    assert.match((await fetch(`${stack.baseUrl}/icon.svg`)).headers.get("content-type") ?? "", /svg/);
  });

  step("two-factor login: set up on the account page, then asked for at the next login", async () => {
    await mia.goto(`${stack.baseUrl}/account`);
    await mia.getByRole("button", { name: "Set up two-factor login" }).click();
    await mia.getByTestId("totp-qr").locator("svg").waitFor();
    const secret = (await mia.getByTestId("totp-secret").innerText()).trim();
    await mia.getByLabel("Code from the app").fill(totpCode(secret));
    await mia.getByRole("button", { name: "Turn on" }).click();
    await mia.getByTestId("recovery-codes").waitFor();
    const codes = (await mia.getByTestId("recovery-codes").locator("li").allInnerTexts()).map((c) => c.trim());
    assert.equal(codes.length, 10);
    // A new browser: the password alone is not enough.
    const fresh = await launchBrowser();
    try {
      const page = await fresh.context.newPage();
      await page.goto(`${stack.baseUrl}/login`);
      await page.fill('input[name="username"]', "mia");
      await page.fill('input[name="password"]', PASSWORD);
      await page.click('button[type="submit"]');
      await page.getByTestId("login-code").waitFor();
      assert.equal(new URL(page.url()).pathname, "/login");
      await page.getByTestId("login-code").fill("000000");
      await page.click('button[type="submit"]');
      await waitFor("the wrong code refused", async () => /not right/.test((await page.getByTestId("form-error").innerText().catch(() => "")) ?? ""), 10_000, 200);
      // The code of the next step: the one set-up took this step's.
      await page.getByTestId("login-code").fill(totpCode(secret, Date.now() + TOTP_PERIOD_S * 1000));
      await page.click('button[type="submit"]');
      await page.waitForURL(`${stack.baseUrl}/`);
      // A recovery code works in place of the app, once.
      for (const expect of ["works", "used up"]) {
        await page.context().clearCookies();
        await page.goto(`${stack.baseUrl}/login`);
        await page.fill('input[name="username"]', "mia");
        await page.fill('input[name="password"]', PASSWORD);
        await page.click('button[type="submit"]');
        await page.getByTestId("login-code").fill(codes[0]!);
        await page.click('button[type="submit"]');
        if (expect === "works") await page.waitForURL(`${stack.baseUrl}/`);
        else await waitFor("the used code refused", async () => /used already/.test((await page.getByTestId("form-error").innerText().catch(() => "")) ?? ""), 10_000, 200);
      }
    } finally {
      await fresh.close();
    }
  });

  step("a team that requires two-factor login holds a member without it at the account page", async () => {
    await db().user.create({ data: { username: "noah", usernameKey: "noah", passwordHash: await hashPassword(PASSWORD), teamId, memberships: { create: { teamId, role: "member" } } } });
    await admin.goto(`${stack.baseUrl}/teams`);
    admin.once("dialog", (d) => void d.accept());
    await admin.getByRole("button", { name: "Require two-factor login" }).first().click();
    await waitFor("the team to require it", async () => (await db().team.findUniqueOrThrow({ where: { id: teamId } })).requireTotp, 10_000, 200);
    const fresh = await launchBrowser();
    try {
      const page = await fresh.context.newPage();
      await logIn(page, stack.baseUrl, { username: "noah", password: PASSWORD }).catch(() => {});
      await page.goto(`${stack.baseUrl}/guests/new`);
      await page.waitForURL(`${stack.baseUrl}/account`);
      assert.match(await page.getByTestId("set-up-totp").innerText(), /requires two-factor login/);
    } finally {
      await fresh.close();
    }
  });
});
