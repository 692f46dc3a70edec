/**
 * People and teams in Debian's Chromium, as they use the pages: an admin invites someone
 * with a link, who joins with a name and password of their own; an account made with a
 * one-time password can do nothing until its owner chooses a password; teams, roles and
 * the header's team switcher; an admin disables a user, whose open page loses its session
 * within seconds; sessions seen and ended on the account page.
 */
import assert from "node:assert/strict";
import { after, afterEach, before } from "node:test";
import type { Page } from "playwright-core";
import { waitFor } from "../helpers/agent";
import { launchBrowser, logIn, screenshotStep } from "../helpers/browser";
import { story } from "../helpers/story";
import { startTestStack, type TestStack } from "../helpers/web";

story("people and teams in Chromium", (step) => {
  let stack: TestStack;
  let adminBrowser: Awaited<ReturnType<typeof launchBrowser>>;
  let guestBrowser: Awaited<ReturnType<typeof launchBrowser>> | null = null;
  let admin: Page;
  let newcomer: Page | null = null;
  let inviteLink = "";
  const PASSWORD = "newcomer's own password";

  before(async () => {
    stack = await startTestStack();
    adminBrowser = await launchBrowser();
    admin = await adminBrowser.context.newPage();
    admin.setDefaultTimeout(30_000);
    await logIn(admin, stack.baseUrl, stack.admin);
  });
  afterEach((t) => screenshotStep("people", t.name, [admin, newcomer]));
  after(async () => {
    await guestBrowser?.close();
    await adminBrowser?.close();
    await stack?.cleanup();
  });

  step("an admin makes a team and an invitation link into it, shown once", async () => {
    await admin.goto(`${stack.baseUrl}/teams`);
    await admin.getByPlaceholder("Platform").fill("Research Lab");
    await admin.getByRole("button", { name: "Make team" }).click();
    const team = admin.getByTestId("team-Research Lab");
    await team.waitFor();
    // The admin is no member of it; they add themselves as its owner, then invite.
    await team.getByLabel("Member's user name").fill(stack.admin.username);
    await team.getByLabel("Member's role").selectOption("owner");
    await team.getByRole("button", { name: "Add or change" }).click();
    await waitFor("the admin listed as owner", async () => /owner/.test(await team.locator("tbody").innerText()), 10_000, 200);
    await team.getByLabel("Invitation's role").selectOption("member");
    await team.getByRole("button", { name: "Make an invitation link" }).click();
    inviteLink = await team.getByTestId("invite-link").inputValue();
    assert.match(inviteLink, new RegExp(`^${stack.baseUrl}/invite/[A-Za-z0-9_-]{43}$`));
    await admin.reload();
    assert.match(await admin.getByTestId("team-Research Lab").getByTestId("open-invites").innerText(), /an invitation as member/);
    assert.equal(await admin.getByTestId("invite-link").count(), 0, "the link is not shown again");
  });

  step("the invitee joins with a name and password of their own, lands in the team, and the link works no more", async () => {
    guestBrowser = await launchBrowser();
    newcomer = await guestBrowser.context.newPage();
    newcomer.setDefaultTimeout(30_000);
    await newcomer.goto(inviteLink);
    assert.match(await newcomer.getByTestId("invite-offer").innerText(), /team Research Lab as member/);
    await newcomer.fill('input[name="username"]', "Ada");
    await newcomer.fill('input[name="password"]', "short");
    await newcomer.click('button[type="submit"]');
    // The browser's own check (minLength) holds the form; past it, the server's.
    await newcomer.fill('input[name="password"]', PASSWORD);
    await newcomer.click('button[type="submit"]');
    await newcomer.waitForURL(`${stack.baseUrl}/`);
    assert.match(await newcomer.getByTestId("team-switcher").inputValue(), /.+/);
    assert.match(await newcomer.locator("header").innerText(), /Ada/);
    const again = await guestBrowser.context.newPage();
    await again.goto(inviteLink);
    assert.match(await again.getByTestId("invite-refused").innerText(), /used already/);
    await again.close();
  });

  step("added to a second team as viewer, the newcomer switches teams in the header", async () => {
    await admin.goto(`${stack.baseUrl}/teams`);
    const home = admin.locator('[data-testid^="team-"]').filter({ hasNotText: "Research Lab" }).first();
    await home.getByLabel("Member's user name").fill("Ada");
    await home.getByLabel("Member's role").selectOption("viewer");
    await home.getByRole("button", { name: "Add or change" }).click();
    await waitFor("Ada listed in the second team", async () => /Ada\s+viewer/.test(await home.locator("tbody").innerText()), 10_000, 200);
    await newcomer!.reload();
    const switcher = newcomer!.getByTestId("team-switcher");
    const options = await switcher.locator("option").allInnerTexts();
    assert.deepEqual(options.map((o) => o.replace(/^.* \((\w+)\)$/, "$1")).sort(), ["member", "viewer"]);
    const before = await switcher.inputValue();
    const other = await switcher.locator("option").filter({ hasText: "(viewer)" }).getAttribute("value");
    await switcher.selectOption(other!);
    await waitFor("the session's team to change", async () => (await newcomer!.getByTestId("team-switcher").inputValue()) === other, 10_000, 200);
    assert.notEqual(before, other);
    await newcomer!.reload();
    assert.equal(await newcomer!.getByTestId("team-switcher").inputValue(), other, "kept by the session");
  });

  step("an account with a one-time password can only go to its account page until it chooses a password", async () => {
    await admin.goto(`${stack.baseUrl}/teams`);
    const lab = admin.getByTestId("team-Research Lab");
    await lab.getByLabel("New account's user name").fill("trainee");
    await lab.getByRole("button", { name: "Make an account" }).click();
    const shown = await lab.getByTestId("one-time-password").innerText();
    const oneTime = /one-time password: (\S+)/.exec(shown)![1]!;
    const traineeBrowser = await launchBrowser();
    try {
    const trainee = await traineeBrowser.context.newPage();
    trainee.setDefaultTimeout(30_000);
    // The name in capitals: the same person.
    await trainee.goto(`${stack.baseUrl}/login`);
    await trainee.fill('input[name="username"]', "TRAINEE");
    await trainee.fill('input[name="password"]', oneTime);
    await trainee.click('button[type="submit"]');
    await trainee.waitForURL(`${stack.baseUrl}/account`);
    assert.match(await trainee.getByTestId("choose-password").innerText(), /one-time password/);
    await trainee.goto(`${stack.baseUrl}/guests/new`);
    await trainee.waitForURL(`${stack.baseUrl}/account`);
    await trainee.fill('input[name="current"]', oneTime);
    await trainee.fill('input[name="next"]', "trainee's own password");
    await trainee.fill('input[name="again"]', "trainee's own password");
    await trainee.getByRole("button", { name: "Change password" }).click();
    await trainee.waitForURL(`${stack.baseUrl}/`);
    await trainee.goto(`${stack.baseUrl}/guests/new`);
    assert.equal(new URL(trainee.url()).pathname, "/guests/new");
    } finally {
      await traineeBrowser.close();
    }
  });

  step("the account page lists the user's sessions with their browser; ending one logs that browser out", async () => {
    // A second session of Ada's, in the admin's browser context's absence: a fresh browser.
    const second = await launchBrowser();
    try {
      const p = await second.context.newPage();
      await logIn(p, stack.baseUrl, { username: "ada", password: PASSWORD });
      await newcomer!.goto(`${stack.baseUrl}/account`);
      const rows = newcomer!.getByTestId("sessions").locator("tbody tr");
      await waitFor("two sessions listed", async () => (await rows.count()) === 2, 10_000, 200);
      assert.match(await rows.first().innerText(), /Chrom.*\(this one\)/s);
      assert.match(await rows.nth(1).innerText(), /127\.0\.0\.1/);
      await rows.nth(1).getByRole("button", { name: "End" }).click();
      await waitFor("one session left", async () => (await rows.count()) === 1, 10_000, 200);
      await p.goto(`${stack.baseUrl}/`);
      assert.equal(new URL(p.url()).pathname, "/login", "the ended session's browser is logged out");
    } finally {
      await second.close();
    }
  });

  step("an admin disables the newcomer: their open page's event stream ends within seconds, and they are logged out", async () => {
    await newcomer!.goto(`${stack.baseUrl}/`);
    await newcomer!.evaluate(() => {
      const w = window as unknown as { __ended: boolean };
      w.__ended = false;
      new EventSource("/api/events").addEventListener("ended", () => (w.__ended = true));
    });
    await admin.goto(`${stack.baseUrl}/users`);
    const row = admin.getByTestId("user-Ada");
    await row.getByRole("button", { name: "Disable" }).click();
    await waitFor("the row to say disabled", async () => /disabled/.test(await row.innerText()), 10_000, 200);
    await waitFor("the newcomer's event stream to end", () => newcomer!.evaluate(() => (window as unknown as { __ended: boolean }).__ended), 10_000, 200);
    await newcomer!.goto(`${stack.baseUrl}/`);
    assert.equal(new URL(newcomer!.url()).pathname, "/login");
    await row.getByRole("button", { name: "Enable" }).click();
    await waitFor("the row to say enabled", async () => !/disabled/.test(await row.innerText()), 10_000, 200);
  });

  step("an admin makes another admin and takes it back; the page offers no buttons on oneself", async () => {
    await admin.goto(`${stack.baseUrl}/users`);
    // The page offers no buttons for oneself; another admin is made, then that one's rights taken back.
    const ada = admin.getByTestId("user-Ada");
    await ada.getByRole("button", { name: "Make admin" }).click();
    await waitFor("Ada an admin", async () => /\(admin\)/.test(await ada.innerText()), 10_000, 200);
    await ada.getByRole("button", { name: "Take admin" }).click();
    await waitFor("Ada no admin", async () => !/\(admin\)/.test(await ada.innerText()), 10_000, 200);
    assert.equal(await admin.getByTestId(`user-${stack.admin.username}`).getByRole("button").count(), 0);
  });

  step("the audit page lists these changes with who, role, team and address; filtered and exported as CSV", async () => {
    await admin.goto(`${stack.baseUrl}/audit`);
    const table = admin.getByTestId("audit");
    const text = await table.innerText();
    for (const seen of [/made the team Research Lab/, /invited someone into a team as member/, /made the account trainee/, /disabled a user/]) assert.match(text, seen);
    assert.match(text, new RegExp(`${stack.admin.username} \\(admin\\)`));
    await admin.getByLabel("Action").fill("user-disable");
    await admin.getByRole("button", { name: "Filter" }).click();
    await admin.waitForURL(/action=user-disable/);
    const rows = table.locator("tbody tr");
    assert.equal(await rows.count(), 1);
    assert.match(await rows.first().innerText(), /disabled a user.*127\.0\.0\.1/s);
    const href = await admin.getByTestId("audit-export").getAttribute("href");
    const csv = await admin.evaluate(async (url) => (await fetch(url!)).text(), href);
    const lines = csv.trim().split("\r\n");
    assert.equal(lines[0], "time,user,role,team,action,result,message,guest,parameters,address");
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /,admin,admin,.*,user-disable,ok,disabled a user,/);
    // The newcomer (a member, no owner) has no audit page.
    const second = await launchBrowser();
    try {
      const p = await second.context.newPage();
      await logIn(p, stack.baseUrl, { username: "ada", password: PASSWORD });
      const answer = await p.goto(`${stack.baseUrl}/audit`);
      assert.equal(answer?.status(), 404);
      assert.equal((await p.evaluate(async () => (await fetch("/audit/export")).status)), 403);
    } finally {
      await second.close();
    }
  });

  step("no page broke the Content-Security-Policy", () => {
    assert.deepEqual([...adminBrowser.cspViolations(), ...(guestBrowser?.cspViolations() ?? [])], []);
  });
});
