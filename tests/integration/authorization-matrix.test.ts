/**
 * The authorization matrix: every entry point of the real web server × every kind of
 * caller, against a table of who is expected to get through. The entry points are not
 * listed by hand: the server actions come from the build's own manifest, the pages and
 * routes from the app folder, so a new one without a row here fails the test.
 *
 * Callers: an admin, the team's owner, an operator, a member (who owns the guest and
 * disks acted on), a viewer, a member of another team, a disabled user, someone logged
 * out, and the holder of a view-only link. Every call gets a fresh world (a guest with
 * a disk, a free disk, an ISO, a task, an invitation, a link, a request for more, a user
 * to act on) and a fresh session, so no call depends on another's effects.
 *
 * "Through" means the policy let it pass: the action answered anything but
 * unauthenticated, forbidden or not-found (a refusal of the input or the state, such as
 * a guest that is not running, comes after the policy); a page or route answered anything
 * but 401, 403, 404 or a redirect to the login page. An internal error fails the test.
 *
 * Every method of every REST API route is a row of its own, called with the session and,
 * for an admin, an owner and a member, with an API token of each scope.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createToken } from "../../server/auth/api-tokens";
import { TOKEN_SCOPES, type TokenScope } from "../../server/auth/policy";
import { createSession, SESSION_COOKIE } from "../../server/auth/sessions";
import { hashSecret, newSecret } from "../../server/auth/tokens";
import { createShare } from "../../server/console/shares";
import { mintShareTicket, mintTicket } from "../../server/console/tickets";
import WebSocket from "ws";
import { waitFor } from "../helpers/agent";
import { appEntries } from "../helpers/app-entries";
import { sessionUser } from "../helpers/db";
import { testDefinition } from "../helpers/specs";
import { startTestStack, type TestStack } from "../helpers/web";
import { Namespaces } from "../helpers/netns";
import { planIpv4 } from "../../server/domain/network-plan";

const ACTORS = ["admin", "owner", "operator", "member", "viewer", "other", "disabled", "anonymous", "share"] as const;
type Actor = (typeof ACTORS)[number];
const SIGNED: Actor[] = ["admin", "owner", "operator", "member", "viewer", "other"];
const TEAM: Actor[] = ["admin", "owner", "operator", "member", "viewer"];
const OPERATE: Actor[] = ["admin", "owner", "operator", "member"];
const CHANGE: Actor[] = ["admin", "owner", "member"];
const MANAGE: Actor[] = ["admin", "owner"];
const ADMIN: Actor[] = ["admin"];
/** Those who make things in their session's team (the other team's member in theirs). */
const CREATORS: Actor[] = ["admin", "owner", "operator", "member", "other"];
const PUBLIC: Actor[] = [...ACTORS];
const MiB = 2 ** 20;

/** Everything one call acts on, made afresh for it; the member ("mia") owns the guest, the disks, the ISO, the task. */
interface World {
  n: number;
  guest: string;
  guestDisk: string;
  free: string;
  loose: string;
  iso: string;
  task: string;
  part: string;
  invite: { id: string; token: string };
  share: { id: string; token: string };
  request: string;
  victim: { id: string; username: string };
  /** Another session of the caller (ended by endSession). */
  otherSession: string;
  /** An API token of the caller's (revoked by revokeApiToken). */
  token: string;
  hardware: Record<string, unknown>;
  /** A managed network of the team, the member's (in the database; the host gets it when its rules are saved). */
  network: string;
}

/** A FormData argument, encoded as React encodes one for a server action. */
class Form {
  constructor(readonly fields: Record<string, string>) {}
}
type Args = unknown[];

/** A subnet of its own for each world (`base` keeps the kinds of call apart): made networks never overlap. */
const subnetOf = (w: { n: number }, base: number) => `10.${base + Math.floor(w.n / 250)}.${w.n % 250}.0/24`;
const newNetwork = (w: { n: number }, base: number, what: string) => ({ name: `mx-${w.n}-${what}`, kind: "nat", subnet: subnetOf(w, base), dhcp: "auto", domain: "mx.internal" });
const NO_RULES = { forwards: [], firewall: { defaultIn: "deny", defaultOut: "allow", rules: [] } };

/** Who may call each server action, and with what: keyed "<file>#<export>". */
const ACTIONS: Record<string, { allow: Actor[]; args: (w: World, actor: Actor) => Args }> = {
  "app/actions/clone-guest.ts#cloneGuest": { allow: CHANGE, args: (w, a) => [w.guest, { name: `mx-${w.n}-${a}-clone`, mode: "linked" }] },
  "app/actions/create-guest.ts#createGuest": {
    allow: CREATORS,
    args: (w, a) => [new Form({ name: `mx-${w.n}-${a}-new`, vcpus: "1", memoryMiB: "64", diskGiB: "1", diskBus: "virtio", iso: "", network: "none", boot: "disk" })],
  },
  "app/actions/delete-guest.ts#deleteGuest": { allow: CHANGE, args: (w) => [w.guest, true] },
  "app/actions/disks.ts#attachDisk": { allow: CHANGE, args: (w) => [w.free, { guestId: w.guest, bus: "virtio" }] },
  "app/actions/disks.ts#cancelTask": { allow: ["admin", "member"], args: (w) => [w.task] },
  "app/actions/disks.ts#checkDisk": { allow: OPERATE, args: (w) => [w.free] },
  "app/actions/disks.ts#convertDisk": { allow: CHANGE, args: (w, a) => [w.free, { file: `mx-${w.n}-${a}-conv.raw`, format: "raw" }] },
  "app/actions/disks.ts#createDisk": { allow: CREATORS, args: (w, a) => [{ pool: "default", file: `mx-${w.n}-${a}-made.qcow2`, format: "qcow2", size: "64M", encrypt: false, passphrase: "" }] },
  "app/actions/disks.ts#deleteDisk": { allow: CHANGE, args: (w) => [w.free] },
  "app/actions/disks.ts#deleteIso": { allow: CHANGE, args: (w) => [w.iso] },
  "app/actions/disks.ts#detachDisk": { allow: CHANGE, args: (w) => [w.guestDisk] },
  "app/actions/disks.ts#importImage": { allow: ADMIN, args: (w) => [{ pool: "default", file: w.loose }] },
  "app/actions/disks.ts#removeUploadPart": { allow: ["admin", "member"], args: (w) => [{ pool: "default", file: w.part }] },
  "app/actions/disks.ts#resizeDisk": { allow: CHANGE, args: (w) => [w.free, { size: "128M", shrink: false }] },
  "app/actions/disks.ts#setIsoPublished": { allow: ADMIN, args: (w) => [w.iso, true] },
  "app/actions/disks.ts#snapshotDisk": { allow: CHANGE, args: (w) => [w.free, { op: "create", name: "s1" }] },
  "app/actions/edit-hardware.ts#editHardware": { allow: CHANGE, args: (w) => [w.guest, w.hardware] },
  "app/actions/hand-over.ts#handOver": { allow: MANAGE, args: (w) => ["disk", w.free, "otto", undefined] },
  "app/actions/import-guest.ts#importGuest": { allow: CREATORS, args: (w, a) => [JSON.stringify(testDefinition(`mx-${w.n}-${a}-imported`, [], { memoryMiB: 64 }))] },
  "app/actions/login.ts#login": { allow: PUBLIC, args: () => [{ error: null, username: "" }, new Form({ username: "nobody-here", password: "not a password" })] },
  "app/actions/login.ts#logout": { allow: PUBLIC, args: () => [] },
  "app/actions/make-template.ts#makeTemplate": { allow: CHANGE, args: (w) => [w.guest] },
  "app/actions/native-viewer.ts#nativeViewerPassword": { allow: OPERATE, args: (w) => [w.guest] },
  "app/actions/open-console.ts#openConsole": { allow: OPERATE, args: (w) => [w.guest, { kind: "vnc" }] },
  "app/actions/open-shared-console.ts#openSharedConsole": { allow: PUBLIC, args: (w) => [w.share.token] },
  "app/actions/paste-text.ts#pasteText": { allow: OPERATE, args: (w) => [w.guest, "hello"] },
  "app/actions/people.ts#acceptInvite": { allow: PUBLIC, args: (w, a) => [w.invite.token, { error: null, username: "" }, new Form({ username: `mx-${w.n}-${a}-joiner`, password: "a long enough password" })] },
  "app/actions/people.ts#beginTotp": { allow: SIGNED, args: () => [] },
  "app/actions/people.ts#changeOwnPassword": { allow: SIGNED, args: () => ["not my password", "a new password 123"] },
  "app/actions/people.ts#disableUser": { allow: ADMIN, args: (w) => [w.victim.id, true] },
  "app/actions/people.ts#endSession": { allow: SIGNED, args: (w) => [w.otherSession] },
  "app/actions/people.ts#endTotp": { allow: SIGNED, args: () => ["not my password", "000000"] },
  "app/actions/people.ts#finishTotp": { allow: SIGNED, args: () => ["000000"] },
  "app/actions/people.ts#inviteToTeam": { allow: MANAGE, args: () => [ids.alpha, "member", 24] },
  "app/actions/people.ts#makeAccount": { allow: MANAGE, args: (w, a) => [`mx-${w.n}-${a}-account`, ids.alpha, "member"] },
  "app/actions/people.ts#makeAdmin": { allow: ADMIN, args: (w) => [w.victim.id, false] },
  "app/actions/people.ts#newRecoveryCodes": { allow: SIGNED, args: () => ["000000"] },
  "app/actions/people.ts#removeUser": { allow: ADMIN, args: (w) => [w.victim.id, ids.member] },
  "app/actions/people.ts#requireTotpInTeam": { allow: MANAGE, args: () => [ids.alpha, false] },
  "app/actions/people.ts#resetUserPassword": { allow: ADMIN, args: (w) => [w.victim.id] },
  "app/actions/people.ts#resetTotp": { allow: ADMIN, args: (w) => [w.victim.id] },
  "app/actions/people.ts#revokeInvitation": { allow: MANAGE, args: (w) => [w.invite.id] },
  "app/actions/power-guest.ts#powerGuest": { allow: OPERATE, args: (w) => [w.guest, "force-off"] },
  "app/actions/quotas.ts#answerRequest": { allow: ADMIN, args: (w) => [w.request, false, "not now"] },
  "app/actions/quotas.ts#requestMore": { allow: OPERATE, args: () => [{ teamId: ids.alpha, resource: "snapshots", scope: "team", amount: "20", reason: "the matrix asks" }] },
  "app/actions/quotas.ts#setQuotaLimit": { allow: ADMIN, args: () => [ids.alpha, "", "snapshots", ""] },
  "app/actions/share-console.ts#createShareLink": { allow: CHANGE, args: (w) => [w.guest, "1h", "matrix"] },
  "app/actions/share-console.ts#revokeShareLink": { allow: CHANGE, args: (w) => [w.guest, w.share.id] },
  "app/actions/switch-team.ts#switchTeam": { allow: TEAM, args: () => [ids.alpha] },
  "app/actions/networks.ts#makeNetwork": { allow: CREATORS, args: (w) => [newNetwork(w, 40, "action")] },
  "app/actions/networks.ts#removeNetwork": { allow: CHANGE, args: (w) => [w.network] },
  "app/actions/networks.ts#saveNetworkRules": { allow: CHANGE, args: (w) => [w.network, NO_RULES, undefined] },
  "app/actions/networks.ts#testForward": { allow: OPERATE, args: (w) => [w.network, "tcp", 20000] },
  "app/actions/networks.ts#setLink": { allow: OPERATE, args: (w) => [w.guest, 0, false] },
  "app/actions/networks.ts#reserveAddress": { allow: CHANGE, args: (w) => [w.guest, 0, { ip: null, name: null }] },
  "app/actions/tokens.ts#makeApiToken": { allow: SIGNED, args: (w, a) => [{ name: `mx-${w.n}-${a}`, scope: "read", days: 1, teamId: null }] },
  "app/actions/tokens.ts#revokeApiToken": { allow: SIGNED, args: (w) => [w.token] },
  "app/actions/teams.ts#addTeam": { allow: ADMIN, args: (w, a) => [`mx-${w.n}-${a}-team`] },
  "app/actions/teams.ts#changeTeamName": { allow: ADMIN, args: () => [ids.beta, "Beta"] },
  "app/actions/teams.ts#removeFromTeam": { allow: MANAGE, args: (w) => [ids.alpha, w.victim.id] },
  "app/actions/teams.ts#setTeamRole": { allow: MANAGE, args: (w) => [ids.alpha, w.victim.username, "viewer"] },
  "app/actions/teams.ts#setThresholds": { allow: MANAGE, args: () => [ids.alpha, { "guest-cpu": { percent: 90, minutes: 10 }, "guest-memory": { percent: 90, minutes: 10 }, "folder-space": { percent: 90 } }] },
};

/**
 * Who may open each page and route (by its file under app/), and at which address; a route
 * without GET is called with its method and body (from this dashboard's Origin).
 */
type Row = { allow: Actor[]; url: (w: World) => string; method?: string; body?: (w: World) => unknown; scope?: TokenScope };
const PAGES: Record<string, Row> = {
  "page.tsx": { allow: SIGNED, url: () => "/" },
  "account/page.tsx": { allow: SIGNED, url: () => "/account" },
  "audit/page.tsx": { allow: MANAGE, url: () => "/audit" },
  "audit/export/route.ts": { allow: MANAGE, url: () => "/audit/export" },
  "disks/page.tsx": { allow: SIGNED, url: () => "/disks" },
  "disks/[id]/page.tsx": { allow: TEAM, url: (w) => `/disks/${w.free}` },
  "guests/[id]/page.tsx": { allow: TEAM, url: (w) => `/guests/${w.guest}` },
  "guests/[id]/console/page.tsx": { allow: TEAM, url: (w) => `/guests/${w.guest}/console` },
  "guests/[id]/edit/page.tsx": { allow: TEAM, url: (w) => `/guests/${w.guest}/edit` },
  "guests/[id]/serial/page.tsx": { allow: TEAM, url: (w) => `/guests/${w.guest}/serial` },
  "guests/[id]/definition/route.ts": { allow: TEAM, url: (w) => `/guests/${w.guest}/definition` },
  "guests/[id]/serial-log/route.ts": { allow: OPERATE, url: (w) => `/guests/${w.guest}/serial-log` },
  "guests/[id]/thumbnail/route.ts": { allow: TEAM, url: (w) => `/guests/${w.guest}/thumbnail` },
  "guests/[id]/viewers/route.ts": { allow: TEAM, url: (w) => `/guests/${w.guest}/viewers` },
  "guests/[id]/vnc-ca/route.ts": { allow: OPERATE, url: (w) => `/guests/${w.guest}/vnc-ca` },
  "guests/new/page.tsx": { allow: SIGNED, url: () => "/guests/new" },
  "invite/[token]/page.tsx": { allow: PUBLIC, url: (w) => `/invite/${w.invite.token}` },
  "login/page.tsx": { allow: PUBLIC, url: () => "/login" },
  "quotas/page.tsx": { allow: SIGNED, url: () => "/quotas" },
  "networks/page.tsx": { allow: SIGNED, url: () => "/networks" },
  "networks/[id]/page.tsx": { allow: TEAM, url: (w) => `/networks/${w.network}` },
  "share/[token]/page.tsx": { allow: PUBLIC, url: (w) => `/share/${w.share.token}` },
  "tasks/page.tsx": { allow: SIGNED, url: () => "/tasks" },
  "teams/page.tsx": { allow: SIGNED, url: () => "/teams" },
  "users/page.tsx": { allow: ADMIN, url: () => "/users" },
  "host/page.tsx": { allow: ADMIN, url: () => "/host" },
  "top/page.tsx": { allow: SIGNED, url: () => "/top?sort=cpu&window=hour" },
  // Prometheus's scrape: everyone signed in gets through, each seeing only their own (tests/integration/prometheus.test.ts).
  "metrics/route.ts": { allow: SIGNED, url: () => "/metrics" },
  "api/events/route.ts": { allow: SIGNED, url: () => "/api/events" },
  "api/v1/openapi.json/route.ts": { allow: PUBLIC, url: () => "/api/v1/openapi.json" },
  "docs/api/page.tsx": { allow: PUBLIC, url: () => "/docs/api" },
  "auth/sso/start/route.ts": { allow: PUBLIC, url: () => "/auth/sso/start" },
  "auth/sso/callback/route.ts": { allow: PUBLIC, url: () => "/auth/sso/callback?code=x&state=y" },
};

/**
 * The REST API's operations, keyed "<file>" for GET and "<file>#<METHOD>" for the others,
 * with who may call each with their session and the least token scope it takes (the
 * token test below calls each with tokens of every scope).
 */
const API: Record<string, Row & { scope: TokenScope }> = {
  "api/v1/guests/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/guests" },
  "api/v1/guests/route.ts#POST": { allow: CREATORS, scope: "write", url: () => "/api/v1/guests", body: (w) => testDefinition(`mx-${w.n}-api`, [], { memoryMiB: 64 }) },
  "api/v1/guests/[id]/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/guests/${w.guest}` },
  "api/v1/guests/[id]/route.ts#DELETE": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/guests/${w.guest}?disks=delete` },
  "api/v1/guests/[id]/definition/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/guests/${w.guest}/definition` },
  "api/v1/guests/[id]/hardware/route.ts#PUT": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/guests/${w.guest}/hardware`, body: (w) => w.hardware },
  "api/v1/guests/[id]/clone/route.ts#POST": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/guests/${w.guest}/clone`, body: (w) => ({ name: `mx-${w.n}-apiclone`, mode: "linked" }) },
  "api/v1/guests/[id]/template/route.ts#POST": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/guests/${w.guest}/template` },
  "api/v1/guests/[id]/power/route.ts#POST": { allow: OPERATE, scope: "operate", url: (w) => `/api/v1/guests/${w.guest}/power`, body: () => ({ action: "force-off" }) },
  "api/v1/guests/[id]/console/route.ts#POST": { allow: OPERATE, scope: "operate", url: (w) => `/api/v1/guests/${w.guest}/console`, body: () => ({ kind: "vnc" }) },
  "api/v1/guests/[id]/shares/route.ts": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/guests/${w.guest}/shares` },
  "api/v1/guests/[id]/shares/route.ts#POST": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/guests/${w.guest}/shares`, body: () => ({ duration: "1h" }) },
  "api/v1/guests/[id]/shares/[shareId]/route.ts#DELETE": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/guests/${w.guest}/shares/${w.share.id}` },
  "api/v1/disks/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/disks" },
  "api/v1/disks/route.ts#POST": { allow: CREATORS, scope: "write", url: () => "/api/v1/disks", body: (w) => ({ pool: "default", file: `mx-${w.n}-api.qcow2`, format: "qcow2", size: "64M" }) },
  "api/v1/disks/[id]/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/disks/${w.free}` },
  "api/v1/disks/[id]/route.ts#DELETE": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/disks/${w.free}` },
  "api/v1/disks/[id]/convert/route.ts#POST": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/disks/${w.free}/convert`, body: (w) => ({ file: `mx-${w.n}-apiconv.raw`, format: "raw" }) },
  "api/v1/disks/[id]/resize/route.ts#POST": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/disks/${w.free}/resize`, body: () => ({ size: "128M", shrink: false }) },
  "api/v1/disks/[id]/snapshots/route.ts#POST": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/disks/${w.free}/snapshots`, body: () => ({ op: "create", name: "s1" }) },
  "api/v1/disks/[id]/check/route.ts#POST": { allow: OPERATE, scope: "operate", url: (w) => `/api/v1/disks/${w.free}/check` },
  "api/v1/disks/[id]/attach/route.ts#POST": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/disks/${w.free}/attach`, body: (w) => ({ guestId: w.guest, bus: "virtio" }) },
  "api/v1/disks/[id]/detach/route.ts#POST": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/disks/${w.guestDisk}/detach` },
  "api/v1/guests/[id]/nics/[index]/link/route.ts#POST": { allow: OPERATE, scope: "operate", url: (w) => `/api/v1/guests/${w.guest}/nics/0/link`, body: () => ({ up: false }) },
  "api/v1/guests/[id]/nics/[index]/reservation/route.ts#PUT": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/guests/${w.guest}/nics/0/reservation`, body: () => ({ ip: null, name: null }) },
  "api/v1/networks/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/networks" },
  "api/v1/networks/route.ts#POST": { allow: CREATORS, scope: "write", url: () => "/api/v1/networks", body: (w) => newNetwork(w, 70, "api") },
  "api/v1/networks/[id]/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/networks/${w.network}` },
  "api/v1/networks/[id]/route.ts#DELETE": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/networks/${w.network}` },
  "api/v1/networks/[id]/rules/route.ts#PUT": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/networks/${w.network}/rules`, body: () => NO_RULES },
  "api/v1/networks/[id]/addresses/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/networks/${w.network}/addresses` },
  "api/v1/networks/[id]/counters/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/networks/${w.network}/counters` },
  "api/v1/networks/[id]/forwards/test/route.ts#POST": { allow: OPERATE, scope: "operate", url: (w) => `/api/v1/networks/${w.network}/forwards/test`, body: () => ({ protocol: "tcp", hostPort: 20000 }) },
  "api/v1/isos/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/isos" },
  "api/v1/isos/[name]/route.ts#DELETE": { allow: CHANGE, scope: "write", url: (w) => `/api/v1/isos/${w.iso}` },
  "api/v1/isos/[name]/published/route.ts#PUT": { allow: ADMIN, scope: "admin", url: (w) => `/api/v1/isos/${w.iso}/published`, body: () => ({ published: true }) },
  "api/v1/tasks/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/tasks" },
  "api/v1/tasks/[id]/route.ts": { allow: ["admin", "member"], scope: "read", url: (w) => `/api/v1/tasks/${w.task}` },
  "api/v1/tasks/[id]/cancel/route.ts#POST": { allow: ["admin", "member"], scope: "write", url: (w) => `/api/v1/tasks/${w.task}/cancel` },
  "api/v1/events/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/events" },
  "api/v1/tokens/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/tokens" },
  "api/v1/tokens/route.ts#POST": { allow: SIGNED, scope: "read", url: () => "/api/v1/tokens", body: (w) => ({ name: `mx-${w.n}`, scope: "read", days: 1 }) },
  "api/v1/tokens/[id]/route.ts#DELETE": { allow: SIGNED, scope: "read", url: (w) => `/api/v1/tokens/${w.token}` },
  "api/v1/users/route.ts": { allow: ADMIN, scope: "admin", url: () => "/api/v1/users" },
  "api/v1/teams/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/teams" },
  "api/v1/roles/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/roles" },
  "api/v1/teams/[id]/members/[username]/route.ts#PUT": { allow: MANAGE, scope: "admin", url: (w) => `/api/v1/teams/${ids.alpha}/members/${w.victim.username}`, body: () => ({ role: "viewer" }) },
  "api/v1/teams/[id]/members/[username]/route.ts#DELETE": { allow: MANAGE, scope: "admin", url: (w) => `/api/v1/teams/${ids.alpha}/members/${w.victim.username}` },
  "api/v1/quotas/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/quotas" },
  "api/v1/teams/[id]/thresholds/route.ts": { allow: TEAM, scope: "read", url: () => `/api/v1/teams/${ids.alpha}/thresholds` },
  "api/v1/teams/[id]/thresholds/route.ts#PUT": { allow: MANAGE, scope: "admin", url: () => `/api/v1/teams/${ids.alpha}/thresholds`, body: () => ({ "guest-cpu": { percent: 90, minutes: 10 }, "guest-memory": { percent: 90, minutes: 10 }, "folder-space": { percent: 90 } }) },
  "api/v1/teams/[id]/quotas/[resource]/route.ts#PUT": { allow: ADMIN, scope: "admin", url: () => `/api/v1/teams/${ids.alpha}/quotas/snapshots`, body: () => ({ limit: "50" }) },
  "api/v1/audit/route.ts": { allow: MANAGE, scope: "admin", url: () => "/api/v1/audit" },
  // Metrics: a guest's to whoever may see it (its live samples and counters: 409, it is not running, after the policy); the host's to admins.
  "api/v1/guests/[id]/metrics/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/guests/${w.guest}/metrics?range=day` },
  "api/v1/guests/[id]/metrics/live/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/guests/${w.guest}/metrics/live?after=0` },
  "api/v1/guests/[id]/metrics/current/route.ts": { allow: TEAM, scope: "read", url: (w) => `/api/v1/guests/${w.guest}/metrics/current` },
  "api/v1/hosts/[id]/metrics/route.ts": { allow: ADMIN, scope: "read", url: () => `/api/v1/hosts/${ids.host}/metrics?range=hour` },
  "api/v1/hosts/[id]/metrics/current/route.ts": { allow: ADMIN, scope: "read", url: () => `/api/v1/hosts/${ids.host}/metrics/current` },
  "api/v1/metrics/top/route.ts": { allow: SIGNED, scope: "read", url: () => "/api/v1/metrics/top?sort=rss&window=day" },
  "api/v1/metrics/guests/route.ts": { allow: SIGNED, scope: "read", url: (w) => `/api/v1/metrics/guests?ids=${w.guest}` },
};

/** The API's uploads (served before Next.js, as the pages' are): asking how much of a file arrived, with the session. */
const API_UPLOAD = { allow: SIGNED, url: (w: World) => `/api/v1/uploads/default/mx-${w.n}-nothing.raw` };

/**
 * The console bridge's upgrades (served before Next.js): each caller presents a ticket
 * minted for them (the link holder, one for their link; someone logged out, the member's)
 * with their own cookie, and the bridge asks the policy again.
 */
const UPGRADES: Record<string, { allow: Actor[]; kind: "vnc" | "serial"; viewOnly: boolean }> = {
  "screen, with input": { allow: OPERATE, kind: "vnc", viewOnly: false },
  "screen, view-only": { allow: [...TEAM, "share"], kind: "vnc", viewOnly: true },
  "serial port": { allow: OPERATE, kind: "serial", viewOnly: false },
};

/** The upload route is served before Next.js (server/web/uploads.ts): asking how much of a file arrived. */
const UPLOAD = { allow: SIGNED, url: (w: World) => `/upload/default/mx-${w.n}-nothing.raw` };

const ids: Record<string, string> = {};

/** The method of a row: the key's "#<METHOD>", else the row's own, else GET. */
const methodOf = (key: string, row: Row): string | undefined => key.split("#")[1] ?? row.method;

/** React's reply encoder, from the copy Next.js runs (as its client calls a server action). */
const { encodeReply } = createRequire(import.meta.url)("next/dist/compiled/react-server-dom-turbopack/client.node.js") as {
  encodeReply: (value: unknown) => Promise<string | FormData>;
};

function formDataOf(fields: Record<string, string>): FormData {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return form;
}

/**
 * React's flight rows: "<id>:<json>\n", or "<id>:T<hex byte length>,<text>" with no end
 * of line (a long string, such as an SVG).
 */
function flightRows(bytes: Buffer): Map<string, string> {
  const rows = new Map<string, string>();
  let at = 0;
  while (at < bytes.length) {
    const colon = bytes.indexOf(0x3a, at);
    if (colon < 0) break;
    const id = bytes.subarray(at, colon).toString("latin1");
    if (bytes[colon + 1] === 0x54 /* T */) {
      const comma = bytes.indexOf(0x2c, colon);
      const length = parseInt(bytes.subarray(colon + 2, comma).toString("latin1"), 16);
      rows.set(id, bytes.subarray(comma + 1, comma + 1 + length).toString("utf8"));
      at = comma + 1 + length;
    } else {
      const end = bytes.indexOf(0x0a, colon);
      rows.set(id, bytes.subarray(colon + 1, end < 0 ? bytes.length : end).toString("utf8"));
      at = end < 0 ? bytes.length : end + 1;
    }
  }
  return rows;
}


describe("authorization matrix: every entry point × every caller", () => {
  let stack: TestStack;
  const namespaces = new Namespaces();
  let agentNamespace = "";
  let manifest: Record<string, { filename: string; exportedName: string }>;
  let serial = 0;
  const db = () => stack.database.db;
  const users: Partial<Record<Actor, { id: string; username: string }>> = {};

  before(async () => {
    // Networks made through the matrix are set up by an agent in a namespace of the test's own.
    agentNamespace = namespaces.add("mx");
    stack = await startTestStack({ agentNetns: agentNamespace });
    const raw = JSON.parse(fs.readFileSync(path.resolve(".next/server/server-reference-manifest.json"), "utf8")) as { node: Record<string, { filename: string; exportedName: string }> };
    manifest = raw.node;
    const admin = await db().user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    users.admin = admin;
    const alpha = await db().team.create({ data: { name: "Alpha", nameKey: "alpha" } });
    const beta = await db().team.create({ data: { name: "Beta", nameKey: "beta" } });
    ids.alpha = alpha.id;
    ids.beta = beta.id;
    ids.host = (await db().host.findUniqueOrThrow({ where: { name: "local" } })).id;
    const mk = async (actor: Actor, username: string, teamId: string, role: string) => {
      users[actor] = await db().user.create({ data: { username, usernameKey: username, passwordHash: "x", teamId, memberships: { create: { teamId, role } } } });
    };
    await mk("owner", "olga", alpha.id, "owner");
    await mk("operator", "otto", alpha.id, "operator");
    await mk("member", "mia", alpha.id, "member");
    await mk("viewer", "vera", alpha.id, "viewer");
    await mk("other", "oz", beta.id, "member");
    await mk("disabled", "dora", alpha.id, "member");
    ids.member = users.member!.id;
    ids.userNetwork = (await db().network.create({ data: { name: "user", mode: "user", ownerId: ids.member, teamId: alpha.id, hostId: ids.host } })).id;
  });
  after(async () => {
    await stack?.cleanup();
    namespaces.cleanup();
  });

  /** A fresh world for one call (see World). */
  async function world(actor: Actor): Promise<World> {
    const n = ++serial;
    const common = { ownerId: ids.member!, teamId: ids.alpha!, hostId: ids.host! };
    const image = async (file: string, volume: string) => {
      await stack.agent.client.createImage({ pool: "default", file, format: "qcow2", bytes: 64 * MiB, volume });
      return { volume, pool: "default", file, format: "qcow2", sizeBytes: BigInt(64 * MiB), bus: "virtio", ...common };
    };
    // One card, on user-mode networking: its link can be set (refused: the guest is not running).
    const mac = `52:54:00:${(n >> 8).toString(16).padStart(2, "0")}:${(n & 255).toString(16).padStart(2, "0")}:77`;
    const guest = await db().guest.create({ data: { name: `mx-${n}`, vcpus: 1, memoryMiB: 64, bootOrder: "disk", ...common, nics: { create: [{ mac, model: "virtio", networkId: ids.userNetwork! }] } } });
    const plan = planIpv4(subnetOf({ n }, 100), "auto");
    const network = await db().network.create({
      data: { name: `mx-${n}-net`, mode: "nat", subnet: plan.subnet, dhcpStart: plan.dhcp!.start, dhcpEnd: plan.dhcp!.end, domain: "mx.internal", ...common },
    });
    const guestDisk = await db().disk.create({ data: { ...(await image(`mx-${n}-g.qcow2`, `mxg${n}vol00000`)), guestId: guest.id } });
    const free = await db().disk.create({ data: await image(`mx-${n}-f.qcow2`, `mxf${n}vol00000`) });
    await stack.agent.client.createImage({ pool: "default", file: `mx-${n}-loose.qcow2`, format: "qcow2", bytes: MiB, volume: `mxl${n}vol00000` });
    const iso = `mx-${n}.iso`;
    fs.writeFileSync(path.join(stack.agent.dataDir, "images", iso), randomBytes(64 * 1024));
    await db().isoImage.create({ data: { name: iso, sizeBytes: 64n * 1024n, hostId: ids.host!, teamId: ids.alpha, uploaderId: ids.member } });
    const task = await db().task.create({ data: { id: `mx-task-${n}`, kind: "convert", title: "a finished conversion", state: "succeeded", hostId: ids.host!, userId: ids.member, teamId: ids.alpha } });
    const part = `mx-${n}-part.raw`;
    fs.writeFileSync(path.join(stack.agent.dataDir, "disks", `${part}.part`), randomBytes(MiB));
    await db().task.create({ data: { id: `mx-upload-${n}`, kind: "upload", title: "an interrupted upload", state: "failed", target: `default/${part}`, hostId: ids.host!, userId: ids.member, teamId: ids.alpha } });
    const inviteToken = newSecret();
    const invite = await db().invite.create({ data: { id: hashSecret(inviteToken), teamId: ids.alpha!, role: "member", createdById: users.owner!.id, expiresAt: new Date(Date.now() + 3600_000) } });
    const share = await createShare(db(), { guestId: guest.id, createdById: ids.member!, duration: "1h" });
    const request = await db().quotaRequest.create({ data: { teamId: ids.alpha!, userId: ids.member!, resource: "snapshots", scope: "team", amount: 10n, reason: "for the matrix" } });
    const victim = await db().user.create({ data: { username: `mx-${n}-victim`, usernameKey: `mx-${n}-victim`, passwordHash: "x", teamId: ids.alpha!, memberships: { create: { teamId: ids.alpha!, role: "member" } } } });
    const mine = users[actor];
    const otherSession = mine ? (await db().session.create({ data: { id: hashSecret(newSecret()), userId: mine.id, expiresAt: new Date(Date.now() + 3600_000) } })).id : "0".repeat(64);
    const token = mine ? (await db().apiToken.create({ data: { id: hashSecret(newSecret()), userId: mine.id, name: "matrix", scope: "read", expiresAt: new Date(Date.now() + 3600_000) } })).id : "0".repeat(64);
    const hardware = { machine: "q35", firmware: "bios", vcpus: 1, sockets: 1, threads: 1, memoryMiB: 96, bootOrder: ["disk"], display: "std", serial: true, rtc: "utc", description: "", tags: [], disks: [{ id: guestDisk.id, bus: "virtio", cache: "none", readOnly: false }], cdroms: [], nics: [{ mac, model: "virtio", isolated: false, forwards: [] }] };
    return { n, guest: guest.id, guestDisk: guestDisk.id, free: free.id, loose: `mx-${n}-loose.qcow2`, iso, task: task.id, part, invite: { id: invite.id, token: inviteToken }, share: { id: share.id, token: share.token }, request: request.id, victim: { id: victim.id, username: victim.username }, otherSession, token, hardware, network: network.id };
  }

  /** A fresh session cookie for a caller (none for the logged-out and the link holder; a disabled user's is dead). */
  async function cookieOf(actor: Actor): Promise<string | null> {
    const user = users[actor];
    if (!user) return null;
    const cookie = `${SESSION_COOKIE}=${(await createSession(db(), user.id)).secret}`;
    if (actor === "disabled") await db().user.update({ where: { id: user.id }, data: { disabledAt: new Date() } });
    return cookie;
  }

  /** Calls a server action as the browser does (React's reply encoding), and says whether the policy let it through. */
  async function callAction(id: string, args: Args, cookie: string | null): Promise<{ through: boolean; what: string }> {
    const headers: Record<string, string> = { "next-action": id, origin: stack.baseUrl, accept: "text/x-component" };
    if (cookie) headers.cookie = cookie;
    // Encoded by React's own client encoder, the one the browser runs.
    const body = await encodeReply(args.map((a) => (a instanceof Form ? formDataOf(a.fields) : a)));
    if (typeof body === "string") headers["content-type"] = "text/plain;charset=UTF-8";
    const res = await fetch(`${stack.baseUrl}/`, { method: "POST", headers, body, redirect: "manual" });
    const bytes = Buffer.from(await res.arrayBuffer());
    const text = bytes.toString("utf8");
    if (res.headers.get("x-action-redirect")) return { through: true, what: `redirect ${res.headers.get("x-action-redirect")}` };
    assert.equal(res.status, 200, `HTTP ${res.status}: ${text.slice(0, 300)}`);
    // React's flight rows, "<id>:<json>": row 0 names the action's result as "$@<row>".
    const rows = flightRows(bytes);
    const head = JSON.parse(rows.get("0") ?? "{}") as { a?: string };
    const row = typeof head.a === "string" && head.a.startsWith("$@") ? rows.get(head.a.slice(2)) : undefined;
    assert.ok(row, `no result in the answer: ${text.slice(0, 300)}`);
    const result = JSON.parse(row) as { ok?: boolean; code?: string; error?: string | null };
    if (result.ok === undefined) return { through: true, what: `state ${JSON.stringify(result).slice(0, 120)}` }; // a form's state (login, invitation)
    assert.notEqual(result.code, "internal", `an internal error: ${result.error}`);
    const denied = result.ok === false && ["unauthenticated", "forbidden", "not-found"].includes(result.code ?? "");
    return { through: !denied, what: result.ok ? "ok" : `${result.code}: ${result.error}` };
  }

  /** Opens a page or route, and says whether it let the caller through; with a token, as the API's clients do. */
  async function open(url: string, cookie: string | null, method = "GET", payload?: unknown, token?: string): Promise<{ through: boolean; what: string }> {
    const controller = new AbortController();
    const headers: Record<string, string> = cookie ? { cookie } : {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (method !== "GET") headers.origin = stack.baseUrl;
    if (payload !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${stack.baseUrl}${url}`, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload), redirect: "manual", signal: controller.signal });
    const location = res.headers.get("location") ?? "";
    // A 404's body says whose it is: the policy's "may not see it" or Next's not-found page, or
    // (a route that got through) the host's "there is none" (no serial log yet, no TLS).
    const body = res.status === 404 ? await res.text() : "";
    controller.abort(); // an event stream would never end
    assert.ok(res.status < 500, `HTTP ${res.status} for ${url}`);
    const toLogin = res.status >= 300 && res.status < 400 && new URL(location, stack.baseUrl).pathname === "/login" && !new URL(location, stack.baseUrl).search;
    // The API's 404 is a problem with its code: every row's world has what it names, so "not-found" is the policy hiding it.
    const apiNotFound = (res.headers.get("content-type") ?? "").startsWith("application/problem+json") && (JSON.parse(body || "{}") as { code?: string }).code === "not-found";
    const policy404 = res.status === 404 && (apiNotFound || /you may not see it|not yours to see|not yours\b/.test(body) || /^<!DOCTYPE html>/i.test(body));
    const refused = [401, 403].includes(res.status) || policy404 || toLogin;
    return { through: !refused, what: `${res.status}${location ? ` → ${location}` : ""}${res.status === 404 ? ` ${body.slice(0, 80)}` : ""}` };
  }

  test("every server action in the build has a row in the table", () => {
    const inBuild = new Set(Object.values(manifest).map((a) => `${a.filename}#${a.exportedName}`));
    assert.deepEqual([...inBuild].filter((k) => !ACTIONS[k]).sort(), [], "actions with no expected row: add them to ACTIONS");
    assert.deepEqual(Object.keys(ACTIONS).filter((k) => !inBuild.has(k)).sort(), [], "rows for actions the build does not have");
  });

  test("every page and route under app/ has a row in the table", () => {
    // A route's every method is an entry point of its own: "<file>" for GET, "<file>#<METHOD>" for the others.
    const found = appEntries().flatMap((e) => {
      if (e.kind === "page") return [e.file];
      assert.ok(e.methods.length, `app/${e.file} exports no method`);
      return e.methods.map((m) => `${e.file}${m === "GET" ? "" : `#${m}`}`);
    });
    const rows = { ...PAGES, ...API };
    assert.deepEqual(found.filter((f) => !rows[f]).sort(), [], "pages or routes with no expected row: add them to PAGES (or API)");
    assert.deepEqual(Object.keys(rows).filter((f) => !found.includes(f)).sort(), [], "rows for entry points the app does not have");
  });

  test("server actions: each caller gets through exactly where the table says", { timeout: 15 * 60_000 }, async () => {
    const wrong: string[] = [];
    for (const [id, { filename, exportedName }] of Object.entries(manifest)) {
      const row = ACTIONS[`${filename}#${exportedName}`];
      if (!row) continue;
      for (const actor of ACTORS) {
        const w = await world(actor);
        const cookie = await cookieOf(actor);
        const { through, what } = await callAction(id, row.args(w, actor), cookie);
        if (actor === "disabled") await db().user.update({ where: { id: users.disabled!.id }, data: { disabledAt: null } });
        if (through !== row.allow.includes(actor)) wrong.push(`${exportedName} as ${actor}: ${through ? "let through" : "refused"} (${what})`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test("console upgrades: each caller gets through exactly where the table says", { timeout: 5 * 60_000 }, async () => {
    // One running guest of the member's, started through the real action.
    const w = await world("member");
    const start = Object.entries(manifest).find(([, a]) => a.exportedName === "powerGuest")![0];
    assert.equal((await callAction(start, [w.guest, "start"], await cookieOf("member"))).through, true);
    await waitFor("the guest to run", async () => (await stack.agent.client.guest(w.guest)).state === "running", 60_000, 200);
    const wrong: string[] = [];
    for (const [name, row] of Object.entries(UPGRADES)) {
      for (const actor of ACTORS) {
        const cookie = await cookieOf(actor);
        const ticket =
          actor === "share"
            ? row.viewOnly && row.kind === "vnc"
              ? await mintShareTicket(db(), w.share.id, w.guest)
              : null
            : await mintTicket(db(), (users[actor] ?? users.member)!.id, w.guest, new Date(), { kind: row.kind, viewOnly: row.viewOnly });
        const through = ticket ? await upgrade(`/ws/${row.kind === "vnc" ? "console" : "serial"}/${w.guest}?ticket=${ticket.ticket}`, cookie) : false;
        if (actor === "disabled") await db().user.update({ where: { id: users.disabled!.id }, data: { disabledAt: null } });
        if (through !== row.allow.includes(actor)) wrong.push(`${name} as ${actor}: ${through ? "let through" : "refused"}`);
      }
    }
    await stack.agent.client.forceOff(w.guest);
    assert.deepEqual(wrong, []);
  });

  /** Opens a websocket through the bridge: true when it upgraded. */
  function upgrade(url: string, cookie: string | null): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${stack.port}${url}`, { headers: { origin: stack.baseUrl, ...(cookie ? { cookie } : {}) } });
      ws.once("open", () => {
        ws.terminate();
        resolve(true);
      });
      ws.once("unexpected-response", (_req, res) => {
        assert.ok(res.statusCode! < 500, `the bridge answered ${res.statusCode}`);
        res.resume();
        ws.terminate();
        resolve(false);
      });
      ws.once("error", (err) => reject(err));
    });
  }

  test("pages, routes and uploads: each caller gets through exactly where the table says", { timeout: 10 * 60_000 }, async () => {
    const wrong: string[] = [];
    const rows: Array<[string, Row]> = [...Object.entries(PAGES), ...Object.entries(API), ["upload route", UPLOAD], ["API upload route", API_UPLOAD]];
    for (const [file, row] of rows) {
      for (const actor of ACTORS) {
        const w = await world(actor);
        const cookie = await cookieOf(actor);
        const { through, what } = await open(row.url(w), cookie, methodOf(file, row), row.body?.(w));
        if (actor === "disabled") await db().user.update({ where: { id: users.disabled!.id }, data: { disabledAt: null } });
        if (through !== row.allow.includes(actor)) wrong.push(`${file} as ${actor}: ${through ? "let through" : "refused"} (${what})`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test("API tokens: each scope gets through exactly where the caller's rights and the operation's scope both allow", { timeout: 10 * 60_000 }, async () => {
    const wrong: string[] = [];
    for (const [file, row] of Object.entries(API)) {
      for (const actor of ["admin", "owner", "member"] as const) {
        for (const scope of TOKEN_SCOPES) {
          const w = await world(actor);
          // A user holds so many working tokens at most: the earlier calls' go (but the world's own).
          await db().apiToken.deleteMany({ where: { userId: users[actor]!.id, id: { not: w.token } } });
          const { token } = await createToken(db(), await sessionUser(db(), users[actor]!.id), { name: `mx-${w.n}`, scope, days: 1 });
          const { through, what } = await open(row.url(w), null, methodOf(file, row), row.body?.(w), token);
          const expected = row.allow.includes(actor) && TOKEN_SCOPES.indexOf(scope) >= TOKEN_SCOPES.indexOf(row.scope);
          if (through !== expected) wrong.push(`${file} as ${actor} with a ${scope} token: ${through ? "let through" : "refused"} (${what})`);
        }
      }
    }
    assert.deepEqual(wrong, []);
  });
});
