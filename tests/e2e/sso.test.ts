/**
 * Single sign-on end to end: a real OpenID provider (the `oidc-provider` package, on
 * loopback, its own login and consent pages), the real web server configured for it, and
 * Debian's Chromium clicking through. A person the provider puts in the "devs" group
 * lands in the Platform team as a member; when the provider moves them to "leads" their
 * next login makes them its owner; someone in no mapped group is turned away with a
 * clear message; the code exchange uses PKCE (the provider requires it).
 */
import assert from "node:assert/strict";
import type http from "node:http";
import { after, afterEach, before } from "node:test";
import Provider from "oidc-provider";
import type { Page } from "playwright-core";
import { launchBrowser, screenshotStep } from "../helpers/browser";
import { freePort } from "../helpers/net";
import { story } from "../helpers/story";
import { startTestStack, type TestStack } from "../helpers/web";

/** The provider's people: their groups are what it says at each login. */
const people: Record<string, { name: string; groups: string[] }> = {
  "sub-mia": { name: "mia", groups: ["devs"] },
  "sub-nobody": { name: "nobody", groups: ["marketing"] },
};

story("single sign-on with a real OpenID provider in Chromium", (step) => {
  let stack: TestStack;
  let idp: http.Server;
  let issuer = "";
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  /** Every token request the provider answered, with whether it carried a PKCE verifier. */
  const tokenRequests: Array<{ pkce: boolean }> = [];

  before(async () => {
    const idpPort = await freePort();
    issuer = `http://127.0.0.1:${idpPort}`;
    stack = await startTestStack({
      webEnv: {
        GUESTHOUSE_SSO_ISSUER: issuer,
        GUESTHOUSE_SSO_CLIENT_ID: "guesthouse",
        GUESTHOUSE_SSO_CLIENT_SECRET: "a client secret for the test",
        GUESTHOUSE_SSO_ROLES: "devs=Platform:member, leads=Platform:owner",
        GUESTHOUSE_SSO_LABEL: "Log in with Example ID",
      },
    });
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: "guesthouse",
          client_secret: "a client secret for the test",
          redirect_uris: [`${stack.baseUrl}/auth/sso/callback`],
          grant_types: ["authorization_code"],
          response_types: ["code"],
          token_endpoint_auth_method: "client_secret_post",
        },
      ],
      pkce: { required: () => true },
      claims: { openid: ["sub"], profile: ["preferred_username"], groups: ["groups"] },
      findAccount: (_ctx, id) => {
        const person = people[id];
        return person ? { accountId: id, claims: () => ({ sub: id, preferred_username: person.name, groups: person.groups }) } : undefined;
      },
      features: { devInteractions: { enabled: true } },
      cookies: { keys: ["a cookie key for the test provider"] },
    });
    provider.on("grant.success", (ctx) => tokenRequests.push({ pkce: typeof (ctx.oidc.params as Record<string, unknown> | undefined)?.code_verifier === "string" }));
    idp = provider.listen(idpPort, "127.0.0.1");
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
  });
  afterEach((t) => screenshotStep("sso", t.name, [page]));
  after(async () => {
    await browser?.close();
    idp?.close();
    await stack?.cleanup();
  });

  /** From the dashboard's login page through the provider's login and consent pages. */
  async function signIn(accountId: string): Promise<void> {
    await page.context().clearCookies();
    await page.goto(`${stack.baseUrl}/login`);
    await page.getByTestId("sso-login").click();
    await page.waitForURL((url) => url.href.startsWith(issuer));
    await page.fill('input[name="login"]', accountId);
    await page.fill('input[name="password"]', "anything: the test provider takes any password");
    await page.click('button[type="submit"]');
    // The consent page, the first time this client asks for these scopes.
    await page.waitForURL((url) => url.href.startsWith(stack.baseUrl) || /interaction/.test(url.pathname));
    if (page.url().startsWith(issuer)) await page.click('button[type="submit"]');
    await page.waitForURL((url) => url.href.startsWith(stack.baseUrl));
  }

  step("someone in the provider's devs group logs in and lands in the Platform team as a member", async () => {
    assert.equal(await (await fetch(`${stack.baseUrl}/login`)).text().then((t) => t.includes("Log in with Example ID")), true);
    await signIn("sub-mia");
    await page.waitForURL(`${stack.baseUrl}/`);
    assert.match(await page.locator("header").innerText(), /mia/);
    const user = await stack.database.db.user.findFirstOrThrow({ where: { ssoSubject: `${issuer}/ sub-mia` }, include: { memberships: { include: { team: true } } } });
    assert.deepEqual(user.memberships.map((m) => [m.team.name, m.role]), [["Platform", "member"]]);
    const session = await stack.database.db.session.findFirstOrThrow({ where: { userId: user.id } });
    assert.equal(session.via, "sso");
    assert.ok(tokenRequests.length > 0 && tokenRequests.every((r) => r.pkce), "the code was exchanged with a PKCE verifier");
    assert.equal(await stack.database.db.event.count({ where: { kind: "sso-login", ok: true } }), 1, "the login is in the audit trail");
  });

  step("the provider moves them to leads: at their next login they own the team", async () => {
    people["sub-mia"]!.groups = ["leads"];
    await signIn("sub-mia");
    await page.goto(`${stack.baseUrl}/teams`);
    const team = page.getByTestId("team-Platform");
    await team.waitFor();
    assert.match(await team.locator("tbody").innerText(), /mia\s+owner/);
    assert.equal(await stack.database.db.user.count({ where: { ssoSubject: { not: null } } }), 1, "the same user, not a second one");
  });

  step("someone in no mapped group is turned away with a clear message, and no account is made", async () => {
    await signIn("sub-nobody");
    await page.waitForURL((url) => url.pathname === "/login");
    assert.match(await page.getByTestId("sso-error").innerText(), /puts you in no team of this dashboard/);
    assert.equal(await stack.database.db.user.count({ where: { ssoSubject: `${issuer}/ sub-nobody` } }), 0);
  });

  step("a callback that was not started here (no PKCE verifier, a forged state) is refused", async () => {
    await page.context().clearCookies();
    await page.goto(`${stack.baseUrl}/auth/sso/callback?code=forged&state=forged`);
    await page.waitForURL((url) => url.pathname === "/login");
    assert.match(await page.getByTestId("sso-error").innerText(), /Start it again/);
  });
});
