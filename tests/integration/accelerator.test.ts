/**
 * The agent's choice of accelerator on hosts whose KVM fails, with a stand-in QEMU that
 * plays the failing KVM for the probe only (tests/helpers/fake-qemu.ts) and runs the
 * real QEMU for guests: the agent falls back to TCG, says why, and its guests boot.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestAgent, type TestAgent } from "../helpers/agent";
import { fakeQemu } from "../helpers/fake-qemu";
import { testSpec } from "../helpers/specs";

describe("an agent on a host whose KVM fails on guest code", () => {
  let dir: string;
  let agent: TestAgent;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-accel-"));
    const bin = fakeQemu(path.join(dir, "bin"), "emulation-failure");
    // GUESTHOUSE_ACCEL_CACHE of its own: the suite's shared verdict is about the real QEMU.
    agent = await startTestAgent({ PATH: `${bin}:${process.env.PATH}`, GUESTHOUSE_ACCEL: "auto", GUESTHOUSE_ACCEL_CACHE: path.join(dir, "accelerator.json") });
  });
  after(async () => {
    await agent?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("falls back to TCG and says why in plain words", async () => {
    const host = await agent.client.host();
    assert.equal(host.accelerator, "tcg");
    assert.equal(host.acceleratorReason, "KVM stopped with an emulation failure while running test code (in 32-bit protected mode, after real mode)");
    assert.match(agent.output(), /accelerator tcg: KVM stopped with an emulation failure/, "the agent's log says it too");
  });

  test("its guests run under TCG and boot", async () => {
    const spec = testSpec("guestaccel001");
    const status = await agent.client.start(spec);
    assert.ok(status.argv!.some((a) => a.startsWith("q35,accel=tcg")) && status.argv!.includes("max"), status.argv!.join(" "));
    assert.equal(status.state, "running");
    await agent.client.forceOff(spec.id);
  });

  test("a restarted agent keeps the verdict for the same QEMU and kernel, without booting the test guest again", async () => {
    const kept = JSON.parse(fs.readFileSync(path.join(dir, "accelerator.json"), "utf8")) as { accelerator: string };
    assert.equal(kept.accelerator, "tcg");
    await agent.kill();
    await agent.restart();
    assert.match(agent.output(), /accelerator tcg: KVM stopped with an emulation failure .*\(remembered from /);
    assert.equal((await agent.client.host()).accelerator, "tcg");
  });
});

describe("an agent on a host without QEMU", () => {
  test("refuses to start, saying what to install", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-noqemu-"));
    try {
      // A PATH with node on it and nothing else: no qemu-system-x86_64 anywhere.
      fs.mkdirSync(path.join(dir, "bin"));
      fs.symlinkSync(process.execPath, path.join(dir, "bin", "node"));
      const result = spawnSync(process.execPath, ["--import", "tsx", "server/agent/main.ts"], {
        env: { ...process.env, PATH: path.join(dir, "bin"), GUESTHOUSE_DATA_DIR: path.join(dir, "data"), GUESTHOUSE_ACCEL: "tcg" },
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /^agent: cannot start: QEMU is not installed: qemu-system-x86_64 is not on the agent's PATH\. Install Debian's qemu-system-x86 package/m);
      assert.equal(fs.existsSync(path.join(dir, "data", "agent.sock")), false, "nothing listens");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
