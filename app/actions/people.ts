"use server";

import { cookies, headers } from "next/headers";
import { revalidatePath } from "next/cache";
import { redirect } from "next/navigation";
import { createSession, overTls, sessionCookieName, type SessionUser } from "@/server/auth/sessions";
import { db } from "@/server/db/client";
import { authedAction } from "@/server/web/action";
import { clientAddress } from "@/server/web/client-address";
import { recordEvent } from "@/server/web/audit";
import { changePassword, createAccount, resetPassword, createInvite, deleteUser, endOwnSession, redeemInvite, revokeInvite, setAdmin, setDisabled } from "@/server/web/people";
import { toGuesthouseError } from "@/server/domain/errors";
import { confirmTotp, renewRecoveryCodes, resetSecondFactor, setTeamRequiresTotp, startTotp, turnOffTotp } from "@/server/web/second-factor";

const note = (user: SessionUser, action: string, what: string, teamId?: string) => recordEvent(action, true, what, user, null, { teamId }).catch(() => {});

/** A single-use invitation link's token (shown once). */
export const inviteToTeam = authedAction("invite", async (user, teamId: string, role: unknown, hours: unknown) => {
  const invite = await createInvite(user, teamId, role, hours);
  await note(user, "invite", `invited someone into a team as ${String(role)}`, String(teamId));
  revalidatePath("/teams");
  return { token: invite.token, expiresAt: invite.expiresAt.toISOString() };
});

export const revokeInvitation = authedAction("revoke-invite", async (user, inviteId: string) => {
  await revokeInvite(user, inviteId);
  await note(user, "invite-revoke", "revoked an invitation");
  revalidatePath("/teams");
  return null;
});

/** An account with a one-time password (shown once). */
export const makeAccount = authedAction("make-account", async (user, username: unknown, teamId: string, role: unknown) => {
  const made = await createAccount(user, username, teamId, role);
  await note(user, "account-create", `made the account ${String(username).slice(0, 64)}`, String(teamId));
  revalidatePath("/teams");
  revalidatePath("/users");
  return made;
});

export const changeOwnPassword = authedAction("change-password", async (user, current: unknown, next: unknown) => {
  await changePassword(user, current, next);
  await note(user, "password-change", "changed their password; their other sessions ended");
  revalidatePath("/", "layout");
  return null;
});

export const endSession = authedAction("end-session", async (user, sessionId: string) => {
  await endOwnSession(user, sessionId);
  await note(user, "session-end", "ended one of their sessions");
  revalidatePath("/account");
  return null;
});

export const disableUser = authedAction("disable-user", async (user, userId: string, disabled: boolean) => {
  await setDisabled(user, userId, disabled === true);
  await note(user, disabled ? "user-disable" : "user-enable", `${disabled ? "disabled" : "enabled"} a user`);
  revalidatePath("/users");
  return null;
});

export const makeAdmin = authedAction("make-admin", async (user, userId: string, admin: boolean) => {
  await setAdmin(user, userId, admin === true);
  await note(user, admin === true ? "admin-grant" : "admin-revoke", `${admin === true ? "made" : "took back"} a user's admin rights`);
  revalidatePath("/users");
  return null;
});

export const removeUser = authedAction("delete-user", async (user, userId: string, heirId: string) => {
  await deleteUser(user, userId, heirId);
  await note(user, "user-delete", "deleted a user, handing their guests and disks on");
  revalidatePath("/users");
  return null;
});

export interface InviteState {
  error: string | null;
  username: string;
}

/** The invitation page's form: makes the account, logs it in, goes to the guest list. */
export async function acceptInvite(token: string, _prev: InviteState, form: FormData): Promise<InviteState> {
  const username = String(form.get("username") ?? "").slice(0, 64);
  let userId: string;
  try {
    ({ userId } = await redeemInvite(token, form.get("username"), form.get("password")));
  } catch (err) {
    return { error: toGuesthouseError(err).message, username };
  }
  const head = await headers();
  const session = await createSession(db, userId, { userAgent: head.get("user-agent"), address: clientAddress(head) });
  const secure = overTls(Object.fromEntries(head.entries()));
  (await cookies()).set(sessionCookieName(secure), session.secret, { httpOnly: true, sameSite: "lax", secure, path: "/", expires: session.expiresAt });
  redirect("/");
}

/** Begins setting up TOTP: the secret and its QR code (not in use until confirmed). */
export const beginTotp = authedAction("totp-start", async (user) => startTotp(user));

/** Confirms TOTP with a first code: it is on, and the recovery codes are shown once. */
export const finishTotp = authedAction("totp-confirm", async (user, code: unknown) => {
  const done = await confirmTotp(user, code);
  await note(user, "totp-on", "turned on two-factor login");
  revalidatePath("/account");
  return done;
});

export const newRecoveryCodes = authedAction("totp-recovery", async (user, code: unknown) => {
  const done = await renewRecoveryCodes(user, code);
  await note(user, "totp-recovery", "made new recovery codes");
  revalidatePath("/account");
  return done;
});

export const endTotp = authedAction("totp-off", async (user, password: unknown, code: unknown) => {
  await turnOffTotp(user, password, code);
  await note(user, "totp-off", "turned off two-factor login");
  revalidatePath("/account");
  return null;
});

/** An admin's reset of someone's forgotten password: a one-time password, shown once; their sessions end. */
export const resetUserPassword = authedAction("reset-password", async (user, userId: string) => {
  const reset = await resetPassword(user, userId);
  await recordEvent("password-reset", true, `reset the password of ${reset.username}`, user, null, { params: { userId } }).catch(() => {});
  revalidatePath("/users");
  return { password: reset.password };
});

/** An admin's reset of someone's second factor (a lost phone): it goes, and their sessions end. */
export const resetTotp = authedAction("totp-reset", async (user, userId: string) => {
  await resetSecondFactor(user, userId);
  await recordEvent("totp-reset", true, "reset a user's second factor", user, null, { params: { userId } }).catch(() => {});
  revalidatePath("/users");
  return null;
});

/** A team's owners and admins require a second factor of its members, or stop requiring it. */
export const requireTotpInTeam = authedAction("team-require-totp", async (user, teamId: string, required: boolean) => {
  await setTeamRequiresTotp(user, teamId, required === true);
  await note(user, "team-require-totp", `${required === true ? "required" : "stopped requiring"} a second factor of the team's members`, String(teamId));
  revalidatePath("/teams");
  return null;
});
