/** Single sign-on's settings and group mapping (server/auth/sso.ts). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { groupsOf, parseRoles, rolesFor, ssoConfig } from "../../server/auth/sso";

describe("single sign-on settings", () => {
  test("off without an issuer; an issuer without a client id, a bad claim or a bad mapping is an error naming it", () => {
    assert.equal(ssoConfig({}), null);
    assert.throws(() => ssoConfig({ GUESTHOUSE_SSO_ISSUER: "https://id.example.com" }), /GUESTHOUSE_SSO_CLIENT_ID is not/);
    assert.throws(() => ssoConfig({ GUESTHOUSE_SSO_ISSUER: "not a url", GUESTHOUSE_SSO_CLIENT_ID: "x" }), /GUESTHOUSE_SSO_ISSUER/);
    assert.throws(() => ssoConfig({ GUESTHOUSE_SSO_ISSUER: "https://id.example.com", GUESTHOUSE_SSO_CLIENT_ID: "x", GUESTHOUSE_SSO_CLAIM: "a b" }), /GUESTHOUSE_SSO_CLAIM/);
    assert.throws(() => parseRoles("devs=Platform:boss"), /one of owner, operator, member, viewer/);
    assert.throws(() => parseRoles("=Platform:member"), /is not "<group>=<team>:<role>"/);
    assert.throws(() => parseRoles("devs"), /is not/);
    const config = ssoConfig({ GUESTHOUSE_SSO_ISSUER: "https://id.example.com/realms/x", GUESTHOUSE_SSO_CLIENT_ID: "gh", GUESTHOUSE_SSO_ROLES: "devs=Platform:member; leads=Platform:owner\nops=admin" });
    assert.equal(config?.claim, "groups");
    assert.deepEqual(config?.roles, [
      { group: "devs", team: "Platform", role: "member" },
      { group: "leads", team: "Platform", role: "owner" },
      { group: "ops", admin: true },
    ]);
  });

  test("groups map to teams with the highest role any of them gives, and to the admin flag", () => {
    const config = { ...ssoConfig({ GUESTHOUSE_SSO_ISSUER: "https://id.example.com", GUESTHOUSE_SSO_CLIENT_ID: "gh" })!, roles: parseRoles("devs=Platform:member, leads=Platform:owner, qa=QA:viewer, ops=admin, team:a=A:operator") };
    assert.deepEqual([...rolesFor(config, ["devs", "leads", "unknown"]).teams], [["Platform", "owner"]]);
    assert.deepEqual(rolesFor(config, ["devs", "qa"]), { teams: new Map([["Platform", "member"], ["QA", "viewer"]]), admin: false });
    assert.equal(rolesFor(config, ["ops"]).admin, true);
    assert.deepEqual([...rolesFor(config, ["team:a"]).teams], [["A", "operator"]], "a group name may hold a colon");
    assert.deepEqual(rolesFor(config, []), { teams: new Map(), admin: false });
  });

  test("a claim's groups: an array of strings or one string; anything else is none", () => {
    assert.deepEqual(groupsOf(["a", 1, "b", null]), ["a", "b"]);
    assert.deepEqual(groupsOf("a"), ["a"]);
    assert.deepEqual(groupsOf({ a: 1 }), []);
    assert.deepEqual(groupsOf(undefined), []);
  });
});
