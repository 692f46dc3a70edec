/**
 * The one policy (server/auth/policy.ts): every role against every action, on its own
 * resources, a teammate's and another team's; the query scopes agree with `can` row by
 * row on a real database; what others are told of a guest they may not see.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  can,
  canCreate,
  canManageHost,
  canManageTeam,
  guestNameFor,
  ownedWhere,
  scopesUpTo,
  TEAM_ROLES,
  TOKEN_SCOPES,
  type Action,
  type TeamRole,
  type TokenScope,
  type UserActor,
} from "../../server/auth/policy";
import { createTestDb, type TestDb } from "../helpers/db";

const ACTIONS: Action[] = ["view", "watch", "operate", "change", "delete", "share", "hand-over"];
const user = (teams: Array<[string, TeamRole]>, extra: Partial<UserActor> = {}): UserActor => ({ kind: "user", id: "me", admin: false, disabled: false, teams: new Map(teams), ...extra });

/** The table the product promises (the README's roles), written out: what each role may do to a team's resources. */
const EXPECTED: Record<TeamRole, { others: Action[]; own: Action[] }> = {
  owner: { others: ACTIONS, own: ACTIONS },
  operator: { others: ["view", "watch", "operate"], own: ["view", "watch", "operate", "change", "delete", "share"] },
  member: { others: ["view", "watch"], own: ["view", "watch", "operate", "change", "delete", "share"] },
  viewer: { others: ["view", "watch"], own: ["view", "watch"] },
};

describe("policy", () => {
  test("each role, each action, on its own and a teammate's resources; nothing on another team's", () => {
    for (const role of TEAM_ROLES) {
      const me = user([["t1", role]]);
      for (const action of ACTIONS) {
        assert.equal(can(me, action, { teamId: "t1", ownerId: "other" }), EXPECTED[role].others.includes(action), `${role} ${action} a teammate's`);
        assert.equal(can(me, action, { teamId: "t1", ownerId: "me" }), EXPECTED[role].own.includes(action), `${role} ${action} their own`);
        assert.equal(can(me, action, { teamId: "t2", ownerId: "me" }), false, `${role} ${action} in a team not theirs, even their own`);
      }
    }
  });

  test("admins may do everything everywhere; a disabled user nothing, admin or not", () => {
    const admin = user([], { admin: true });
    for (const action of ACTIONS) assert.equal(can(admin, action, { teamId: "t9", ownerId: "x" }), true);
    for (const disabled of [user([["t1", "owner"]], { disabled: true }), user([], { admin: true, disabled: true })]) {
      for (const action of ACTIONS) assert.equal(can(disabled, action, { teamId: "t1", ownerId: "me" }), false);
      assert.equal(canManageHost(disabled), false);
      assert.equal(canManageTeam(disabled, "t1"), false);
    }
    assert.equal(canManageHost(admin), true);
    assert.equal(canManageHost(user([["t1", "owner"]])), false, "a team's owner is not the host's admin");
  });

  test("a view-only link's holder may watch its guest and nothing else", () => {
    const share = { kind: "share" as const, guestId: "g1" };
    for (const action of ACTIONS) assert.equal(can(share, action, { teamId: "t1", ownerId: "x", id: "g1" }), action === "watch", action);
    assert.equal(can(share, "watch", { teamId: "t1", ownerId: "x", id: "g2" }), false);
    assert.equal(canManageHost(share), false);
  });

  test("an API token never exceeds its scope: read sees, operate runs, write changes and makes, admin manages", () => {
    const SCOPE_ALLOWS: Record<TokenScope, Action[]> = {
      read: ["view", "watch"],
      operate: ["view", "watch", "operate"],
      write: ACTIONS,
      admin: ACTIONS,
    };
    for (const scope of TOKEN_SCOPES) {
      const owner = user([["t1", "owner"]], { scopes: scopesUpTo(scope) });
      for (const action of ACTIONS) assert.equal(can(owner, action, { teamId: "t1", ownerId: "x" }), SCOPE_ALLOWS[scope].includes(action), `${scope}: ${action}`);
      assert.equal(canCreate(owner, "t1"), scope === "write" || scope === "admin", `${scope}: make things`);
      assert.equal(canManageTeam(owner, "t1"), scope === "admin", `${scope}: manage the team`);
      assert.equal(canManageHost(user([], { admin: true, scopes: scopesUpTo(scope) })), scope === "admin", `${scope}: an admin's token manages the host`);
      assert.equal(Object.keys(ownedWhere(owner, "operate")).length > 0 && JSON.stringify(ownedWhere(owner, "operate")).includes("t1"), SCOPE_ALLOWS[scope].includes("operate"), `${scope}: the operate scope of a query`);
    }
    // A token never has rights its user lacks: a viewer's admin token still only sees.
    const viewer = user([["t1", "viewer"]], { scopes: scopesUpTo("admin") });
    assert.deepEqual(ACTIONS.filter((a) => can(viewer, a, { teamId: "t1", ownerId: "me" })), ["view", "watch"]);
  });

  test("team owners manage their own teams only", () => {
    const me = user([["t1", "owner"], ["t2", "member"]]);
    assert.equal(canManageTeam(me, "t1"), true);
    assert.equal(canManageTeam(me, "t2"), false);
    assert.equal(canManageTeam(me, "t3"), false);
  });

  test("a guest the user may not see is named to them as such", () => {
    const me = user([["t1", "member"]]);
    assert.equal(guestNameFor(me, { name: "teammates-guest", teamId: "t1", ownerId: "x" }), "teammates-guest");
    assert.equal(guestNameFor(me, { name: "other-teams-secret", teamId: "t2", ownerId: "x" }), "a guest you cannot see");
  });

  describe("the query scopes find exactly what `can` allows", () => {
    let t: TestDb;
    const guests: Array<{ id: string; teamId: string; ownerId: string }> = [];
    before(async () => {
      t = await createTestDb();
      const host = await t.db.host.create({ data: { name: "h", endpoint: "unix:/nonexistent" } });
      const teams = await Promise.all(["t1", "t2"].map((name) => t.db.team.create({ data: { name } })));
      const people = await Promise.all(["me", "other"].map((username) => t.db.user.create({ data: { username, passwordHash: "x", teamId: teams[0]!.id, memberships: { create: { teamId: teams[0]!.id, role: "member" } } } })));
      for (const team of teams) {
        for (const owner of people) {
          guests.push(await t.db.guest.create({ data: { name: `${team.name}-${owner.username}`, vcpus: 1, memoryMiB: 64, teamId: team.id, ownerId: owner.id, hostId: host.id }, select: { id: true, teamId: true, ownerId: true } }));
        }
      }
    });
    after(() => t.cleanup());

    test("for every role and action", async () => {
      const [t1, t2] = [guests[0]!.teamId, guests[2]!.teamId];
      const me = guests[0]!.ownerId;
      const actors: UserActor[] = [
        ...TEAM_ROLES.map((role) => ({ ...user([[t1, role]]), id: me })),
        { ...user([[t1, "viewer"], [t2, "owner"]]), id: me },
        { ...user([], { admin: true }), id: me },
        { ...user([[t1, "owner"]], { disabled: true }), id: me },
      ];
      for (const actor of actors) {
        for (const action of ACTIONS) {
          const found = (await t.db.guest.findMany({ where: ownedWhere(actor, action), select: { id: true } })).map((g) => g.id).sort();
          const allowed = guests.filter((g) => can(actor, action, g)).map((g) => g.id).sort();
          assert.deepEqual(found, allowed, `${JSON.stringify([...actor.teams])}${actor.admin ? " admin" : ""}${actor.disabled ? " disabled" : ""}: ${action}`);
        }
      }
    });
  });
});
