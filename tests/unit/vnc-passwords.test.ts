/** One-time VNC passwords against a fake QMP: sharing window, concurrency, old displays, failures. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GuesthouseError } from "../../server/domain/errors";
import type { QmpClient } from "../../server/qemu/qmp";
import { randomVncPassword, VncPasswords } from "../../server/agent/vnc";

function fakeQmp(auth = "vnc", fail: string | null = null) {
  const calls: Array<{ command: string; args?: Record<string, unknown> }> = [];
  const qmp = {
    async execute(command: string, args?: Record<string, unknown>) {
      calls.push({ command, args });
      await new Promise((r) => setTimeout(r, 5)); // replies take a moment, as over a socket
      if (command === fail) throw new GuesthouseError("qmp-error", `QEMU refused ${command}: Could not set password`);
      return command === "query-vnc" ? { enabled: true, auth } : {};
    },
  };
  return { qmp: qmp as unknown as QmpClient, calls };
}

describe("VncPasswords", () => {
  test("sets a random 8-character password, then its expiry, over QMP", async () => {
    const { qmp, calls } = fakeQmp();
    const password = await new VncPasswords(30).forSession(qmp);
    assert.match(password, /^[A-Za-z0-9]{8}$/);
    assert.deepEqual(calls, [
      { command: "query-vnc", args: undefined },
      { command: "set_password", args: { protocol: "vnc", password } },
      { command: "expire_password", args: { protocol: "vnc", time: "+30" } },
    ]);
  });

  test("sessions opening at the same moment wait for one password and share it", async () => {
    const { qmp, calls } = fakeQmp();
    const passwords = new VncPasswords(30);
    const got = await Promise.all([passwords.forSession(qmp), passwords.forSession(qmp), passwords.forSession(qmp)]);
    assert.equal(new Set(got).size, 1);
    assert.equal(calls.filter((c) => c.command === "set_password").length, 1);
    // Shortly after, still shared: no new password.
    assert.equal(await passwords.forSession(qmp), got[0]);
    assert.equal(calls.filter((c) => c.command === "set_password").length, 1);
  });

  test("past the sharing part of its life, the next session gets a new password", async (t) => {
    t.mock.timers.enable({ apis: ["Date"], now: 1_000_000 });
    const { qmp } = fakeQmp();
    const passwords = new VncPasswords(30); // shared for 20 s: 10 s are left to log in
    const first = await passwords.forSession(qmp);
    t.mock.timers.tick(19_000);
    assert.equal(await passwords.forSession(qmp), first);
    t.mock.timers.tick(1_500);
    assert.notEqual(await passwords.forSession(qmp), first);
  });

  test("a short lifetime shares for half of it", async (t) => {
    t.mock.timers.enable({ apis: ["Date"], now: 1_000_000 });
    const { qmp } = fakeQmp();
    const passwords = new VncPasswords(4);
    const first = await passwords.forSession(qmp);
    t.mock.timers.tick(1_900);
    assert.equal(await passwords.forSession(qmp), first);
    t.mock.timers.tick(200);
    assert.notEqual(await passwords.forSession(qmp), first);
  });

  test("each QEMU (QMP connection) has its own password", async () => {
    const passwords = new VncPasswords(30);
    const [a, b] = [fakeQmp(), fakeQmp()];
    assert.notEqual(await passwords.forSession(a.qmp), await passwords.forSession(b.qmp));
  });

  test("a display without authentication (a guest started before passwords) gets the empty password", async () => {
    const { qmp, calls } = fakeQmp("none");
    assert.equal(await new VncPasswords(30).forSession(qmp), "");
    assert.deepEqual(calls.map((c) => c.command), ["query-vnc"]);
  });

  test("a refused set_password fails the session, and the next one tries again", async () => {
    const failing = fakeQmp("vnc", "set_password");
    const passwords = new VncPasswords(30);
    await assert.rejects(passwords.forSession(failing.qmp), (err: GuesthouseError) => err.code === "qmp-error");
    await assert.rejects(passwords.forSession(failing.qmp), (err: GuesthouseError) => err.code === "qmp-error");
    assert.equal(failing.calls.filter((c) => c.command === "set_password").length, 2);
  });

  test("random passwords differ", () => {
    const seen = new Set(Array.from({ length: 200 }, randomVncPassword));
    assert.equal(seen.size, 200);
  });
});
