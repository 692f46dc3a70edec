/**
 * The web's state hub against a real agent and a real database: one event stream per
 * host pushes guest changes to listeners, the host's identity is known while the agent
 * is connected (so pages need not ask for it), an agent that goes away and comes
 * back is reported both times, and every guest's status is kept from the stream (so
 * lists need not ask the agent).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { GuestSpec } from "../../server/domain/types";
import { StateHub } from "../../server/web/state-hub";
import { startTestAgent, waitFor, within, type TestAgent } from "../helpers/agent";
import { createTestDb, type TestDb } from "../helpers/db";
import { testSpec } from "../helpers/specs";

describe("state hub", () => {
  let agent: TestAgent;
  let database: TestDb;
  let hub: StateHub;
  let hostId = "";
  const heard: string[] = [];
  let unsubscribe = () => {};

  before(async () => {
    agent = await startTestAgent();
    database = await createTestDb();
    const host = await database.db.host.create({ data: { name: "state-hub-test", endpoint: `unix:${agent.socketPath}` } });
    hostId = host.id;
    hub = new StateHub(database.db);
    unsubscribe = hub.subscribe((changed) => void heard.push(...changed));
  });
  after(async () => {
    unsubscribe();
    await agent?.cleanup();
    await database?.cleanup();
  });

  test("while connected it knows the host's identity, as the agent reports it", async () => {
    const identity = await waitFor("the hub to know the host", () => hub.hostIdentity(hostId), 10_000);
    const info = await agent.client.host();
    assert.deepEqual(identity, { hostname: info.hostname, accelerator: info.accelerator, acceleratorReason: info.acceleratorReason, qemuVersion: info.qemuVersion });
  });

  test("a guest starting and stopping reaches listeners, each change once", async () => {
    // Nothing to boot: the guests sit in their firmware, using little CPU.
    const spec: GuestSpec = testSpec(randomBytes(12).toString("hex"), { cdroms: [] });
    const marker: GuestSpec = testSpec(randomBytes(12).toString("hex"), { cdroms: [] });
    /** What the agent itself sent, on a stream of the test's own. */
    const sent: string[] = [];
    let opened = () => {};
    const open = new Promise<void>((resolve) => (opened = resolve));
    const own = agent.client.events((status) => {
      if (status.id === spec.id || status.id === marker.id) sent.push(`${status.id === marker.id ? "marker" : "guest"}:${status.state}`);
    }, opened);
    try {
      await within("the agent to accept the test's own stream", open, 5000);
      heard.length = 0;
      await agent.client.start(spec);
      await agent.client.forceOff(spec.id);
      // One stream per host, in order: once the marker guest's start is heard, so is everything before it.
      await agent.client.start(marker);
      await waitFor("the hub to hear the marker", () => heard.includes(marker.id), 10_000);
      await waitFor("the test's own stream to see the marker", () => sent.includes("marker:starting"), 10_000);
      assert.deepEqual(sent.filter((e) => e.startsWith("guest:")), ["guest:starting", "guest:running", "guest:stopped"], "the agent sent each change");
      assert.equal(heard.filter((id) => id === spec.id).length, 3, `the hub passed each on once: ${heard.join(", ")}`);
    } finally {
      own.close();
      await agent.client.forceOff(marker.id).catch(() => {});
    }
  });

  test("an agent that goes away is reported and its identity forgotten; back again, both return", async () => {
    heard.length = 0;
    await agent.kill();
    await waitFor("the host to be reported gone", () => heard.includes(`host:${hostId}`), 5_000);
    await waitFor("the identity to be forgotten", () => hub.hostIdentity(hostId) === null, 5_000);
    heard.length = 0;
    await agent.restart();
    await waitFor("the host to be reported back", () => heard.includes(`host:${hostId}`), 10_000);
    await waitFor("the identity to be known again", () => hub.hostIdentity(hostId), 10_000);
  });

  test("it keeps every guest's status from the stream, once the agent sent them all: a guest running from before the hub followed, then changes as they come; nothing while the agent is gone", async () => {
    const early: GuestSpec = testSpec(randomBytes(12).toString("hex"), { cdroms: [] });
    await agent.client.start(early);
    // A hub that starts following now learns of the running guest from the stream's first lines.
    const fresh = new StateHub(database.db);
    assert.equal(fresh.statusesOf(hostId), null, "nothing before it follows the host");
    const stop = fresh.subscribe(() => {});
    try {
      const statuses = await waitFor("the hub to have heard every guest", () => fresh.statusesOf(hostId), 10_000);
      assert.equal(statuses.get(early.id)?.state, "running");
      // The answer to a power action is kept at once; the stream's own line then agrees with it.
      const stopped = await agent.client.forceOff(early.id);
      fresh.observe(hostId, stopped);
      assert.equal(fresh.statusesOf(hostId)!.get(early.id)?.state, "stopped");
      await agent.client.start(early);
      await waitFor("the start to reach the hub by the stream alone", () => fresh.statusesOf(hostId)?.get(early.id)?.state === "running", 10_000);
      // An older status (an answer overtaken by the stream) never replaces a newer one.
      fresh.observe(hostId, stopped);
      assert.equal(fresh.statusesOf(hostId)!.get(early.id)?.state, "running");
      await agent.kill();
      await waitFor("the statuses to be dropped with the agent", () => fresh.statusesOf(hostId) === null, 5_000);
      await agent.restart();
      await waitFor("the statuses to come back with it", () => fresh.statusesOf(hostId), 10_000);
    } finally {
      stop();
      await agent.client.forceOff(early.id).catch(() => {});
    }
  });
});
