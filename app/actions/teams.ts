"use server";

import { revalidatePath } from "next/cache";
import { authedAction } from "@/server/web/action";
import { recordEvent } from "@/server/web/audit";
import { createTeam, removeMembership, renameTeam, setMembership } from "@/server/web/teams";
import { setTeamThresholds } from "@/server/web/metrics/thresholds";

/** A new team (admins). */
export const addTeam = authedAction("add-team", async (user, name: unknown) => {
  const team = await createTeam(user, name);
  await recordEvent("team-create", true, `made the team ${team.name}`, user, null, { teamId: team.id }).catch(() => {});
  revalidatePath("/teams");
  return team;
});

/** A team's new name (admins). */
export const changeTeamName = authedAction("rename-team", async (user, teamId: string, name: unknown) => {
  await renameTeam(user, teamId, name);
  await recordEvent("team-rename", true, `renamed a team to ${String(name).slice(0, 64)}`, user, null, { teamId: String(teamId) }).catch(() => {});
  revalidatePath("/", "layout");
  return null;
});

/** Adds a user to a team, or changes their role in it (its owners and admins). */
export const setTeamRole = authedAction("set-team-role", async (user, teamId: string, username: unknown, role: unknown) => {
  await setMembership(user, teamId, username, role);
  revalidatePath("/teams");
  return null;
});

/** Takes a user out of a team (its owners and admins). */
export const removeFromTeam = authedAction("remove-from-team", async (user, teamId: string, userId: string) => {
  await removeMembership(user, teamId, userId);
  revalidatePath("/teams");
  return null;
});

/** A team's thresholds: when its guests and their storage folders count as in trouble (its owners and admins). */
export const setThresholds = authedAction("set-thresholds", async (user, teamId: string, input: unknown) => {
  await setTeamThresholds(user, String(teamId), input);
  revalidatePath("/teams");
  return null;
});
