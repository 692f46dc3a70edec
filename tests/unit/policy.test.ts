/** Who may see and operate which guest, and what others are told of it. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { canOperateGuest, guestNameFor, guestScope } from "../../server/auth/policy";
import type { SessionUser } from "../../server/auth/sessions";

describe("policy", () => {
  const admin: SessionUser = { id: "u-admin", username: "root", role: "admin", teamId: "t1" };
  const alice: SessionUser = { id: "u-alice", username: "alice", role: "member", teamId: "t1" };
  const bobs = { name: "bobs-secret-project", ownerId: "u-bob" };
  const alices = { name: "alices-guest", ownerId: "u-alice" };

  test("members are scoped to the guests they own; admins to all", () => {
    assert.deepEqual(guestScope(alice), { ownerId: "u-alice" });
    assert.deepEqual(guestScope(admin), {});
    assert.equal(canOperateGuest(alice, alices), true);
    assert.equal(canOperateGuest(alice, bobs), false);
    assert.equal(canOperateGuest(admin, bobs), true);
  });

  test("another member's guest is named to nobody but its owner and admins", () => {
    assert.equal(guestNameFor(alice, alices), "alices-guest");
    assert.equal(guestNameFor(alice, bobs), "another member's guest");
    assert.equal(guestNameFor(admin, bobs), "bobs-secret-project");
  });
});
