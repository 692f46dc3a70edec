/**
 * The one policy: who may do what to which resource. Every page, server action, route,
 * upload, event stream and console upgrade asks it, through `can` (one resource in
 * hand), `assertCan` (the same, refusing), or the `*Where` scopes (a query's filter, so
 * a list or a lookup only ever finds what the actor may see); no other file decides
 * access. Both come from one table, GRANTS, so a list and a check cannot disagree.
 *
 * Who: a signed-in user, with a role in each team they belong to, and possibly the
 * host-wide admin flag; or the holder of a view-only console link (one guest's screen).
 * A disabled user may do nothing. Roles in a team:
 *   owner     everything in the team, and its members (invites, roles) and usage
 *   operator  sees the team's guests and disks and operates every guest (power, console)
 *   member    sees the team's guests and disks; creates, changes and deletes their own
 *   viewer    sees the team's guests and disks, and their screens view-only
 * Admins may do everything everywhere, and alone manage the host (its storage folders,
 * the shared ISO folder, teams and users).
 *
 * A resource another team holds is "not found" to an actor who may not see it (the
 * scopes never return it); one they may see but not change is "forbidden" with a reason.
 */
import { GuesthouseError } from "../domain/errors";

export const TEAM_ROLES = ["owner", "operator", "member", "viewer"] as const;
export type TeamRole = (typeof TEAM_ROLES)[number];

export function isTeamRole(value: unknown): value is TeamRole {
  return typeof value === "string" && (TEAM_ROLES as readonly string[]).includes(value);
}

/** What may be done to a team's guest or disk. */
export type Action =
  /** See it in lists, on its page and in the event stream. */
  | "view"
  /** Watch its screen without input (the console view-only). */
  | "watch"
  /** Power actions, the console with input, the serial console, paste, a native viewer. */
  | "operate"
  /** Its hardware, disks attached, resize, snapshots, conversions, export, clone, template. */
  | "change"
  | "delete"
  /** Make and revoke view-only links to its screen. */
  | "share"
  /** Give it to another member or team. */
  | "hand-over";

/** What a role may do: to every resource of its team, and to the resources its holder owns. */
const GRANTS: Record<TeamRole, { all: readonly Action[]; own: readonly Action[] }> = {
  owner: { all: ["view", "watch", "operate", "change", "delete", "share", "hand-over"], own: [] },
  operator: { all: ["view", "watch", "operate"], own: ["change", "delete", "share"] },
  member: { all: ["view", "watch"], own: ["operate", "change", "delete", "share"] },
  viewer: { all: ["view", "watch"], own: [] },
};

/**
 * What an API token may be used for, each including the ones before it: `read` (see),
 * `operate` (power, consoles), `write` (make, change, delete, share, hand over), `admin`
 * (what admins and team owners manage: users, teams, members, quotas, the audit trail).
 * A token never exceeds its user's own rights.
 */
export const TOKEN_SCOPES = ["read", "operate", "write", "admin"] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** The scopes a token with `scope` holds: it and every one before it. */
export function scopesUpTo(scope: TokenScope): ReadonlySet<TokenScope> {
  return new Set(TOKEN_SCOPES.slice(0, TOKEN_SCOPES.indexOf(scope) + 1));
}

/** A signed-in user as the policy sees them. */
export interface UserActor {
  kind: "user";
  id: string;
  admin: boolean;
  disabled: boolean;
  /** Their role in each team they belong to, by team id. */
  teams: ReadonlyMap<string, TeamRole>;
  /** Set when the user acts through an API token: what the token may be used for. */
  scopes?: ReadonlySet<TokenScope>;
}

/** The token scope each action needs. */
const SCOPE_OF: Record<Action, TokenScope> = { view: "read", watch: "read", operate: "operate", change: "write", delete: "write", share: "write", "hand-over": "write" };

/** Whether the actor's token (if it acts through one) holds `scope`. */
export function holdsScope(actor: Actor, scope: TokenScope): boolean {
  return scoped(actor, scope);
}

function scoped(actor: Actor, scope: TokenScope): boolean {
  return actor.kind !== "user" || !actor.scopes || actor.scopes.has(scope);
}

/** The holder of a view-only link to one guest's screen. */
export interface ShareActor {
  kind: "share";
  guestId: string;
}

export type Actor = UserActor | ShareActor;

/** A team's resource: a guest, a disk, a network, a task's subject. */
export interface Owned {
  teamId: string;
  ownerId: string;
}

/** Whether `actor` may do `action` to `resource` (a guest or disk; `id` for a share's guest). */
export function can(actor: Actor, action: Action, resource: Owned & { id?: string }): boolean {
  if (actor.kind === "share") return action === "watch" && resource.id === actor.guestId;
  if (actor.disabled || !scoped(actor, SCOPE_OF[action])) return false;
  if (actor.admin) return true;
  const role = actor.teams.get(resource.teamId);
  if (!role) return false;
  const grants = GRANTS[role];
  return grants.all.includes(action) || (resource.ownerId === actor.id && grants.own.includes(action));
}

/**
 * Refuses what `can` does not allow: "not found" when the actor may not even see it (so
 * nothing about it leaks), "forbidden" with `why` when they may see it but not do this.
 */
export function assertCan(actor: Actor, action: Action, resource: Owned & { id?: string }, why: string): void {
  if (can(actor, action, resource)) return;
  if (!can(actor, "view", resource)) throw new GuesthouseError("not-found", "There is no such guest or disk, or it is not yours to see.");
  throw new GuesthouseError("forbidden", why);
}

/**
 * The filter of a query for the guests or disks `actor` may do `action` to: every one
 * for an admin, none for a disabled user, otherwise those of the teams whose role grants
 * it for all and the actor's own in the teams whose role grants it for their own.
 */
export function ownedWhere(actor: UserActor, action: Action): { OR: Array<Record<string, unknown>> } | Record<string, never> {
  if (actor.disabled || !scoped(actor, SCOPE_OF[action])) return { OR: [] };
  if (actor.admin) return {};
  const all: string[] = [];
  const own: string[] = [];
  for (const [teamId, role] of actor.teams) {
    if (GRANTS[role].all.includes(action)) all.push(teamId);
    else if (GRANTS[role].own.includes(action)) own.push(teamId);
  }
  return { OR: [{ teamId: { in: all } }, { teamId: { in: own }, ownerId: actor.id }] };
}

const VERBS: Record<Action, string> = {
  view: "see",
  watch: "watch",
  operate: "operate",
  change: "change",
  delete: "delete",
  share: "share",
  "hand-over": "hand over",
};

/** Why a user who may see a guest or disk may not do `action` to it, and whom to ask. */
export function refusalFor(what: "guest" | "disk" | "network", action: Action): string {
  return `Your role in this ${what}'s team lets you see it, not ${VERBS[action]} it. Ask its owner or an owner of the team.`;
}

/** Roles that make new guests and disks in their team. */
const CREATORS: readonly TeamRole[] = ["owner", "operator", "member"];

/** Refuses making a guest or disk in `teamId` (the session's team) to one who may not. */
export function assertMayCreate(actor: UserActor, teamId: string): void {
  if (actor.disabled) throw new GuesthouseError("forbidden", "Your account is disabled.");
  if (!scoped(actor, "write")) throw new GuesthouseError("forbidden", "This token may not make things: it lacks the write scope.");
  if (actor.admin) return;
  const role = actor.teams.get(teamId);
  if (!role) throw new GuesthouseError("forbidden", "You are in no team to make guests or disks in. Ask an admin to add you to one.");
  if (!CREATORS.includes(role)) throw new GuesthouseError("forbidden", `A ${role} of this team sees its guests but makes none. Ask an owner of the team for another role.`);
}

/** Whether `actor` makes guests, disks and uploads in `teamId` (assertMayCreate, as a yes or no for a page). */
export function canCreate(actor: UserActor, teamId: string): boolean {
  return !actor.disabled && scoped(actor, "write") && (actor.admin || CREATORS.includes(actor.teams.get(teamId) ?? "viewer"));
}

/** Whether a user with `role` in a team may own things there (be handed a guest, a disk, an ISO): not a viewer. */
export function mayOwnIn(role: string | undefined): boolean {
  return role !== undefined && isTeamRole(role) && CREATORS.includes(role);
}

/** The host-wide things only admins do: storage folders, the shared ISO folder, teams and users. */
export function canManageHost(actor: Actor): boolean {
  return actor.kind === "user" && !actor.disabled && actor.admin && scoped(actor, "admin");
}

/**
 * The host's own figures (its metrics, alerts and `guesthouse_host_*` series): admins, with
 * a token of any scope, so a monitoring system's read token sees them without being able
 * to change anything.
 */
export function canSeeHostMetrics(actor: Actor): boolean {
  return actor.kind === "user" && !actor.disabled && actor.admin && scoped(actor, "read");
}

/** The teams `actor` owns (where they manage members, read the audit trail, hand things into). */
export function ownedTeams(actor: UserActor): string[] {
  if (actor.disabled || !scoped(actor, "admin")) return [];
  return [...actor.teams].filter(([, role]) => role === "owner").map(([teamId]) => teamId);
}

/** Working in a team (the header's switcher): its members, whatever their role, and admins (in any team). */
export function canWorkInTeam(actor: Actor, teamId: string): boolean {
  return actor.kind === "user" && !actor.disabled && scoped(actor, "read") && (actor.admin || actor.teams.has(teamId));
}

/** A team's members, roles and usage: its owners and admins. */
export function canManageTeam(actor: Actor, teamId: string): boolean {
  return actor.kind === "user" && !actor.disabled && scoped(actor, "admin") && (actor.admin || actor.teams.get(teamId) === "owner");
}

/** A task's record (and cancelling it): its starter's, and an admin's. */
export function canSeeTask(actor: Actor, task: { userId: string | null }): boolean {
  return actor.kind === "user" && !actor.disabled && scoped(actor, "read") && (actor.admin || task.userId === actor.id);
}

/** Cancelling a task: whoever may see it, acting with the write scope (a read token only looks). */
export function canCancelTask(actor: Actor, task: { userId: string | null }): boolean {
  return canSeeTask(actor, task) && scoped(actor, "write");
}

/** The filter of a query for the task records `actor` may see (canSeeTask). */
export function taskWhere(actor: UserActor): { userId?: string } {
  if (actor.disabled || !scoped(actor, "read")) return { userId: "" };
  return actor.admin ? {} : { userId: actor.id };
}

/**
 * A disk goes into a guest of the same team and the same owner: attached, it would be
 * operated by whoever operates the guest. Another's disk is handed over first.
 */
export function assertSameOwner(disk: Owned & { file: string }, guest: Owned & { name: string }): void {
  if (disk.teamId !== guest.teamId || disk.ownerId !== guest.ownerId) {
    throw new GuesthouseError("forbidden", `${disk.file} and ${guest.name} have different owners; a disk goes only into its own owner's guests. Hand the disk over to the guest's owner first.`);
  }
}

/** A guest's name as `actor` may be told it: one they may not see stays anonymous. */
export function guestNameFor(actor: Actor, guest: Owned & { name: string; id?: string }): string {
  return can(actor, "view", guest) ? guest.name : "a guest you cannot see";
}

/** An ISO image as the policy sees it: the host's own (no team), or a team's upload, private unless published. */
export interface IsoAccess {
  teamId: string | null;
  uploaderId: string | null;
  published: boolean;
}

/** Whether a guest of `teamId` may have this ISO as its CD-ROM (and whether the team's members see it). */
export function isoOfferedTo(iso: IsoAccess | undefined, teamId: string): boolean {
  return !iso || iso.teamId === null || iso.published || iso.teamId === teamId;
}

/** Deleting an ISO: admins; a team's own upload also its uploader (where their role deletes their own) and its team's owners. */
export function canDeleteIso(actor: Actor, iso: IsoAccess | undefined): boolean {
  if (canManageHost(actor)) return true;
  if (!iso || iso.teamId === null || iso.published) return false;
  return can(actor, "delete", { teamId: iso.teamId, ownerId: iso.uploaderId ?? "" });
}

/**
 * Bridged networks (guests' cards on a bridge of the host, so on its LAN, and the VLANs
 * they may use there): made and removed by admins, each for a team, whose members then
 * put cards on it (server/web/networks.ts).
 */
export const canManageBridgedNetworks = canManageHost;

/** Publishing an ISO to every team (and taking it back): admins. */
export const canPublishIso = canManageHost;

/** Setting quotas and answering requests for more: admins. */
export const canSetQuotas = canManageHost;

/** A team's usage against its quotas: its members, whatever their role (people should see what they use), and admins. */
export function canSeeUsage(actor: Actor, teamId: string): boolean {
  return actor.kind === "user" && !actor.disabled && scoped(actor, "read") && (actor.admin || actor.teams.has(teamId));
}

/** Asking for a higher limit: those who make things in the team. */
export function canAskForMore(actor: Actor, teamId: string): boolean {
  if (actor.kind !== "user" || actor.disabled || !scoped(actor, "write")) return false;
  const role = actor.teams.get(teamId);
  return actor.admin || (role !== undefined && CREATORS.includes(role));
}
