/**
 * The API's people, teams, quotas and audit trail: what admins and team owners manage.
 * Each answer is the pages' own query or operation (people.ts, teams.ts, quota-admin.ts,
 * audit.ts) shaped as the API shows it; the policy decides inside them.
 */
import type { z } from "zod";
import { canManageHost, isTeamRole, TEAM_ROLES, type TeamRole } from "../../auth/policy";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import { GuesthouseError } from "../../domain/errors";
import { userNamed } from "../../domain/names";
import { auditWhere, canReadAudit } from "../audit";
import { auditFilterOf } from "../audit-query";
import { allUsers } from "../people";
import { usageOverview, type ResourceUsage } from "../quota-admin";
import { teamsFor } from "../teams";
import type { auditEvent, quotaOverview, roleList, teamView, userView } from "./schemas";

const roleOf = (role: string): TeamRole => (isTeamRole(role) ? role : "viewer");

export async function listUsers(actor: SessionUser): Promise<Array<z.infer<typeof userView>>> {
  if (!canManageHost(actor)) throw new GuesthouseError("forbidden", "Only admins list every account; a team's owners see its members under /teams.");
  return (await allUsers()).map((u) => ({
    id: u.id,
    username: u.username,
    admin: u.role === "admin",
    disabled: u.disabledAt !== null,
    secondFactor: u.totpEnabledAt !== null,
    sso: u.ssoSubject !== null,
    teams: u.memberships.map((m) => ({ id: m.team.id, name: m.team.name, role: roleOf(m.role) })),
  }));
}

export async function listTeams(actor: SessionUser): Promise<Array<z.infer<typeof teamView>>> {
  return (await teamsFor(actor)).map((t) => ({
    id: t.id,
    name: t.name,
    requireSecondFactor: t.requireTotp,
    guests: t._count.guests,
    disks: t._count.disks,
    members: t.memberships.map((m) => ({ id: m.user.id, username: m.user.username, role: roleOf(m.role) })),
  }));
}

const ROLE_TEXT: Record<TeamRole, string> = {
  owner: "everything in the team: its guests and disks, its members, hand-overs",
  operator: "sees and operates every guest of the team (power, consoles); changes and deletes their own",
  member: "sees the team's guests; makes, operates, changes and deletes their own",
  viewer: "sees the team's guests and watches their screens",
};

export function listRoles(): z.infer<typeof roleList> {
  return { items: TEAM_ROLES.map((role) => ({ role, description: ROLE_TEXT[role] })) };
}

/** A user's id by name (any spelling of it, as the teams page takes it). */
export async function userIdNamed(username: string): Promise<string> {
  const user = await db.user.findFirst({ where: userNamed(username), select: { id: true } });
  if (!user) throw new GuesthouseError("not-found", "There is no user of that name.");
  return user.id;
}

export async function quotas(actor: SessionUser): Promise<z.infer<typeof quotaOverview>> {
  const shown = (r: ResourceUsage) => ({ resource: r.resource, used: r.used, limit: r.limit });
  return {
    items: (await usageOverview(actor)).map((t) => ({
      id: t.id,
      name: t.name,
      resources: t.resources.map(shown),
      members: t.members.map((m) => ({ userId: m.userId, username: m.username, resources: m.resources.map(shown) })),
    })),
  };
}

export interface AuditQuery {
  user?: string;
  team?: string;
  action?: string;
  target?: string;
  from?: string;
  to?: string;
  limit?: number;
}

/** The trail `actor` may read, newest first, filtered as the audit page filters it (a date alone is that whole day, UTC). */
export async function auditEvents(actor: SessionUser, q: AuditQuery): Promise<Array<z.infer<typeof auditEvent>>> {
  if (!canReadAudit(actor)) throw new GuesthouseError("forbidden", "Only admins and a team's owners read the audit trail.");
  const { limit, ...params } = q;
  const rows = await db.event.findMany({ where: auditWhere(actor, auditFilterOf(params).filter), orderBy: { at: "desc" }, take: limit ?? 200 });
  return rows.map((e) => ({
    id: e.id,
    at: e.at.toISOString(),
    action: e.kind,
    ok: e.ok,
    message: e.message,
    user: e.username,
    role: e.role,
    teamId: e.teamId,
    guestId: e.guestId,
    params: e.params ? (JSON.parse(e.params) as Record<string, unknown>) : null,
    address: e.address,
  }));
}
