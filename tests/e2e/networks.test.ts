/**
 * Managed networks end to end in Debian's Chromium, the agent in a network namespace the
 * test makes: the host page's doctor names forwarding as off with its fix, and is content
 * once it is applied; a NAT network made on the Networks page; a guest made with its card
 * on it, started (its address on its page, and a second guest's on the list, within 2 s of
 * their leases), reached through a port forward added on the network's page (its test
 * button says the guest answered); a deny rule's counter moves; removal refused while the
 * card is on it.
 */
import assert from "node:assert/strict";
import { after, afterEach, before } from "node:test";
import type { Page } from "playwright-core";
import { waitFor } from "../helpers/agent";
import { launchBrowser, logIn, screenshotStep } from "../helpers/browser";
import { Namespaces } from "../helpers/netns";
import { guestSerialLog } from "../helpers/serial-shell";
import { story } from "../helpers/story";
import { startTestStack, type TestStack } from "../helpers/web";

story("managed networks in Chromium", (step) => {
  const ns = new Namespaces();
  let inside = "";
  let stack: TestStack;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let networkId = "";
  let guestId = "";
  let secondId = "";
  const serialLog = () => guestSerialLog(stack.agent, guestId);

  /** A guest made on the new-guest page with its card on the network lab, started there; its id. */
  const startGuestOnLab = async (name: string): Promise<string> => {
    await page.goto(`${stack.baseUrl}/guests/new`);
    await page.fill('input[name="name"]', name);
    await page.fill('input[name="vcpus"]', "1");
    await page.fill('input[name="memoryMiB"]', "160");
    await page.fill('input[name="diskGiB"]', "0");
    await page.selectOption('select[name="iso"]', "demo.iso");
    await page.selectOption('select[name="boot"]', "cdrom");
    await page.selectOption('select[name="network"]', "lab");
    await page.click('button[type="submit"]');
    await page.waitForURL(/\/guests\/(?!new$)[a-z0-9]+$/, { waitUntil: "commit" });
    const id = page.url().split("/").at(-1)!;
    await page.getByRole("button", { name: "Start", exact: true }).click();
    await page.locator('[data-testid="guest-state"][data-state="running"]').waitFor();
    return id;
  };

  before(async () => {
    inside = ns.add("e2e");
    // Forwards on every address of the namespace, so the test can reach one as a LAN would.
    stack = await startTestStack({ agentNetns: inside, agentEnv: { GUESTHOUSE_FORWARD_ADDRESS: "0.0.0.0", GUESTHOUSE_FORWARD_PORTS: "20000-20999" } });
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
    page.on("dialog", (dialog) => void dialog.accept());
    await logIn(page, stack.baseUrl, stack.admin);
  });
  afterEach((t) => screenshotStep("networks", t.name, [page]));
  after(async () => {
    for (const id of [guestId, secondId]) if (id) await stack?.agent.client.forceOff(id).catch(() => {});
    await browser?.close();
    await stack?.cleanup();
    ns.cleanup();
  });

  step("the host page's doctor names forwarding as off, with its fix; applied, nothing is wrong", async () => {
    await page.goto(`${stack.baseUrl}/host`);
    const finding = page.getByTestId("finding-ip-forward");
    await finding.waitFor();
    assert.match(await finding.innerText(), /sysctl -w net\.ipv4\.ip_forward=1/);
    ns.run(inside, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    await page.reload();
    await page.getByTestId("doctor-ok").waitFor();
  });

  step("a NAT network made on the Networks page is set up on the host and shown with its plan", async () => {
    await page.goto(`${stack.baseUrl}/networks`);
    const form = page.getByRole("form", { name: "New network" });
    await form.locator('input[name="name"]').fill("lab");
    await form.locator('input[name="subnet"]').fill("10.88.0.0/24");
    await form.locator('input[name="domain"]').fill("lab.internal");
    await form.getByRole("button", { name: "Create network" }).click();
    await page.waitForURL(/\/networks\/[a-z0-9]+$/, { waitUntil: "commit" });
    networkId = page.url().split("/").at(-1)!;
    const plan = await page.getByTestId("network-plan").innerText();
    assert.match(plan, /10\.88\.0\.0\/24/);
    assert.match(plan, /10\.88\.0\.1\b/);
    assert.match(plan, /10\.88\.0\.128 – 10\.88\.0\.254/);
    assert.deepEqual((await stack.agent.client.networks()).map((n) => n.id), [networkId]);
    // A second one over it is refused on the page, naming the clash.
    await page.goto(`${stack.baseUrl}/networks`);
    await form.locator('input[name="name"]').fill("clash");
    await form.locator('input[name="subnet"]').fill("10.88.0.0/25");
    await form.getByRole("button", { name: "Create network" }).click();
    assert.match(await page.getByTestId("form-error").innerText(), /overlaps the network lab/);
  });

  step("a guest made with its card on the network starts, takes its lease, and its page shows the address within 2 s", async () => {
    guestId = await startGuestOnLab("netweb");
    await waitFor("the guest's lease", () => /GUESTHOUSE-DHCP eth0 10\.88\.0\.128\/24/.test(serialLog()), 90_000, 250);
    // The page shows it within 2 s of the guest's acknowledgement, with no agent in the guest.
    await page.locator('[data-testid="nic-ipv4"]', { hasText: "10.88.0.128" }).waitFor({ timeout: 2_000 });
  });

  step("a second guest on the network: the guest list shows both guests' addresses, the new one within 2 s of its lease", { timeout: 180_000 }, async () => {
    secondId = await startGuestOnLab("netdb");
    await page.goto(`${stack.baseUrl}/`);
    await waitFor("the second guest's lease", () => /GUESTHOUSE-DHCP eth0 10\.88\.0\.129\/24/.test(guestSerialLog(stack.agent, secondId)), 90_000, 250);
    await page.locator('[data-testid="guest-ip"]', { hasText: "10.88.0.129" }).waitFor({ timeout: 2_000 });
    await page.locator('[data-testid="guest-ip"]', { hasText: "10.88.0.128" }).waitFor({ timeout: 2_000 });
  });

  step("a port forward added on the network's page reaches the guest's web server; its test button says the guest answered", async () => {
    await page.goto(`${stack.baseUrl}/networks/${networkId}`);
    await page.getByRole("button", { name: "Add port forward" }).click();
    await page.fill('input[name="forward0-host"]', "20080");
    await page.fill('input[name="forward0-guest"]', "80");
    await page.getByRole("button", { name: "Apply forwards and firewall" }).click();
    await page.getByTestId("test-forward-20080").waitFor();
    const fromHost = ns.fetchText(inside, "http://10.88.0.1:20080/");
    assert.match(fromHost ?? "no answer", /GUESTHOUSE-HTTP/);
    await page.getByTestId("test-forward-20080").click();
    assert.match(await page.getByTestId("forward-result-20080").innerText(), /The guest answered on tcp port 20080/);
  });

  step("a deny rule blocks the forward and its counter on the page moves", async () => {
    await page.getByRole("button", { name: "Add rule" }).click();
    const rule = page.getByTestId("rule-0");
    await rule.getByLabel("Ports").fill("80");
    await page.getByRole("button", { name: "Apply forwards and firewall" }).click();
    // Saved, then applied on the host: wait for the host's rules to have it.
    await waitFor("the rule on the host", async () => Object.keys((await stack.agent.client.networkCounters(networkId)).rules).length === 1, 10_000);
    assert.match((await stack.database.db.network.findUniqueOrThrow({ where: { id: networkId } })).firewall, /"ports":\{"from":80,"to":80\}/);
    assert.equal(ns.fetchText(inside, "http://10.88.0.1:20080/", 3_000), null, "blocked");
    await page.reload();
    const hits = Number(await page.locator('[data-testid^="rule-hits-"]').first().innerText());
    assert.ok(hits > 0, `the rule matched ${hits} packets`);
  });

  step("the network is not removed while the guest's card is on it", async () => {
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    assert.match(await page.getByTestId("delete-network-lab").innerText(), /Cards of (netdb, netweb|netweb, netdb) are on lab/);
    assert.deepEqual((await stack.agent.client.networks()).map((n) => n.id), [networkId]);
  });
});
