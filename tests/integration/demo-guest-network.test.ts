/**
 * The demo guest's own networking (scripts/fixtures.sh), booted by a real agent with a
 * user-mode card: udhcpc gets QEMU's lease in the background and announces it on serial
 * ("GUESTHOUSE-DHCP eth0 10.0.2.15/24"); the lease sets the address, the default route and
 * /etc/resolv.conf; the guest's web server answers through a host port forward on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { freeForwardPort } from "../helpers/net";
import { BOOT_TIMEOUT_MS, SerialShell } from "../helpers/serial-shell";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";
import type { GuestSpec } from "../../server/domain/types";

story("the demo guest's network on a user-mode card", (step) => {
  let agent: TestAgent;
  let shell: SerialShell | undefined;
  let spec: GuestSpec;
  let port: number;

  before(async () => {
    agent = await startTestAgent();
    port = await freeForwardPort();
    spec = testSpec("guestdnet0001", {
      nics: [{ mac: "52:54:00:ab:cd:51", model: "virtio", mode: "user", isolated: false, forwards: [{ protocol: "tcp", hostPort: port, guestPort: 80 }] }],
    });
  });
  after(async () => {
    shell?.close();
    await agent?.client.forceOff(spec.id).catch(() => {});
    await agent?.cleanup();
  });

  step("it boots and announces its DHCP lease on eth0 on the serial port", { timeout: BOOT_TIMEOUT_MS + 60_000 }, async () => {
    await agent.client.start(spec);
    shell = await SerialShell.open(agent, spec.id);
    // The lease comes in the background, often just after READY: waited for, not assumed.
    await waitFor("the DHCP marker for eth0", () => /^GUESTHOUSE-DHCP eth0 10\.0\.2\.15\/24\r?$/m.test(shell!.log()), 30_000, 200);
  });

  step("the lease set the address, the default route and resolv.conf", async () => {
    const out = await shell!.run("ip -4 addr show dev eth0; ip route; cat /etc/resolv.conf");
    assert.match(out, /inet 10\.0\.2\.15\/24 /, out);
    assert.match(out, /^default via 10\.0\.2\.2 dev eth0/m, out);
    assert.match(out, /^nameserver 10\.0\.2\.3$/m, out);
  });

  step("its web server answers through the host's port forward on 127.0.0.1", async () => {
    const body = await waitFor(
      "the guest's page through the forward",
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5_000) });
        return res.ok ? await res.text() : null;
      },
      30_000,
      500,
    );
    assert.equal(body, "GUESTHOUSE-HTTP\nhostname: demo\n");
  });
});
