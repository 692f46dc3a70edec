/**
 * The guest state machine (server/domain/types.ts), by its properties rather than by
 * restating its tables: what each kind of state must and must not offer, that every
 * action leads somewhere the machine allows, and how QEMU's run states are read.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  allowedActions,
  canDo,
  canTransition,
  GUEST_ACTIONS,
  GUEST_STATES,
  HALTED_STATES,
  isHalted,
  qemuLives,
  stateOfRunState,
  type GuestAction,
  type GuestState,
} from "../../server/domain/types";

/** QEMU 7.2's RunState enum (qapi/run-state.json), every value. */
const QEMU_RUN_STATES = [
  "debug", "inmigrate", "internal-error", "io-error", "paused", "postmigrate", "prelaunch", "finish-migrate",
  "restore-vm", "running", "save-vm", "shutdown", "suspended", "watchdog", "guest-panicked", "colo",
];

function reachableFrom(from: GuestState): Set<GuestState> {
  const seen = new Set<GuestState>([from]);
  const queue = [from];
  while (queue.length) {
    const s = queue.shift()!;
    for (const t of GUEST_STATES) if (canTransition(s, t) && !seen.has(t)) (seen.add(t), queue.push(t));
  }
  return seen;
}

/** Where each action takes a guest, as the supervisor carries it out. */
const LEADS_TO: Partial<Record<GuestAction, GuestState[]>> = {
  start: ["starting"],
  shutdown: ["shutting-down"],
  reboot: ["shutting-down"],
  pause: ["paused"],
  resume: ["running"],
  "force-off": ["stopped"],
  restart: ["stopped"], // then stopped → starting
  reset: ["running", "paused"], // a halted guest runs again; a paused one stays paused
};

describe("guest state machine", () => {
  test("every state is reachable from stopped, and every state can end in stopped", () => {
    assert.deepEqual([...reachableFrom("stopped")].sort(), [...GUEST_STATES].sort());
    for (const s of GUEST_STATES) assert.ok(reachableFrom(s).has("stopped"), `${s} cannot get back to stopped`);
  });

  test("no state changes into itself, and nothing skips starting", () => {
    for (const s of GUEST_STATES) assert.equal(canTransition(s, s), false, `${s} → ${s}`);
    for (const s of GUEST_STATES) {
      if (s !== "starting" && canTransition("stopped", s)) assert.fail(`stopped → ${s} skips starting`);
      if (s !== "starting" && canTransition("crashed", s)) assert.fail(`crashed → ${s} skips starting`);
    }
  });

  test("every action a state offers leads somewhere the machine allows from it", () => {
    for (const s of GUEST_STATES) {
      for (const action of allowedActions(s)) {
        const targets = LEADS_TO[action];
        if (!targets) continue; // console, delete: no change of state
        assert.ok(targets.some((t) => t === s || canTransition(s, t)), `${action} in ${s} leads to ${targets.join(" or ")}, which ${s} cannot reach`);
      }
    }
  });

  test("a guest whose QEMU lives cannot be started or deleted, and can always be forced off; one without QEMU has nothing but start and delete", () => {
    for (const s of GUEST_STATES) {
      if (qemuLives(s)) {
        assert.equal(canDo(s, "start"), false, `start in ${s}`);
        assert.equal(canDo(s, "delete"), false, `delete in ${s}`);
        assert.equal(canDo(s, "force-off"), true, `force-off in ${s}`);
      } else {
        assert.deepEqual([...allowedActions(s)].sort(), ["delete", "start"], s);
      }
    }
  });

  test("a guest QEMU has halted is never offered what needs running vCPUs, and always a way out: reset, force off, start again", () => {
    for (const s of HALTED_STATES) {
      for (const needsVcpus of ["shutdown", "reboot", "pause"] as const) assert.equal(canDo(s, needsVcpus), false, `${needsVcpus} in ${s}`);
      for (const way of ["reset", "force-off", "restart"] as const) assert.equal(canDo(s, way), true, `${way} in ${s}`);
    }
    // Only halted guests are restarted in one step: a running one has reboot, a stopped one start.
    for (const s of GUEST_STATES) assert.equal(canDo(s, "restart"), isHalted(s), `restart in ${s}`);
  });

  test("resume is offered where QEMU can continue: a person's pause, a disk error, a watchdog, an unexplained halt; never after an internal error or a panic", () => {
    assert.equal(canDo("paused", "resume"), true);
    assert.equal(canDo("io-error", "resume"), true);
    assert.equal(canDo("watchdog", "resume"), true);
    assert.equal(canDo("halted", "resume"), true);
    assert.equal(canDo("internal-error", "resume"), false, "QEMU refuses cont until the guest is reset");
    assert.equal(canDo("guest-panicked", "resume"), false, "QEMU refuses cont until the guest is reset");
  });

  test("every action is offered somewhere", () => {
    for (const action of GUEST_ACTIONS) assert.ok(GUEST_STATES.some((s) => canDo(s, action)), action);
  });
});

describe("QEMU's run states in the guest's words", () => {
  test("only QEMU's running state is running; every other state either keeps the guest's state (passing) or is not running", () => {
    for (const runState of QEMU_RUN_STATES) {
      for (const requested of [true, false]) {
        const state = stateOfRunState(runState, requested);
        if (runState === "running") assert.equal(state, "running");
        else assert.notEqual(state, "running", `${runState} shown as running`);
      }
    }
  });

  test("QEMU's own reasons for stopping the vCPUs become the states of the same name", () => {
    for (const runState of ["internal-error", "guest-panicked", "io-error", "watchdog"]) {
      assert.equal(stateOfRunState(runState, false), runState);
      assert.equal(stateOfRunState(runState, true), runState, "a pause asked for does not hide an error");
    }
    assert.equal(stateOfRunState("shutdown", false), "powered-off");
  });

  test("a pause is a pause only when the agent asked for it; otherwise the guest is halted", () => {
    assert.equal(stateOfRunState("paused", true), "paused");
    assert.equal(stateOfRunState("paused", false), "halted");
    assert.equal(stateOfRunState("debug", false), "halted");
    assert.equal(stateOfRunState("suspended", false), "halted");
  });

  test("snapshots and migrations pass without changing the guest's state; a run state QEMU adds later counts as halted", () => {
    for (const passing of ["save-vm", "restore-vm", "finish-migrate", "inmigrate", "postmigrate", "colo"]) assert.equal(stateOfRunState(passing, false), null, passing);
    assert.equal(stateOfRunState("some-future-state", false), "halted");
  });

  test("every state QEMU's run states map to is a state of the machine that running can change into", () => {
    for (const runState of QEMU_RUN_STATES) {
      const state = stateOfRunState(runState, false);
      if (state === null || state === "running") continue;
      assert.ok(canTransition("running", state), `running → ${state} (from ${runState})`);
      assert.ok(isHalted(state), `${state} (from ${runState}) is not counted as halted`);
    }
  });
});
