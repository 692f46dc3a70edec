/**
 * Who may see and operate which guest. Admins see every guest; members see the
 * guests they own. Queries use guestScope() so another person's guest is simply
 * "not found", which leaks nothing about its existence.
 */
import type { SessionUser } from "./sessions";

export function guestScope(user: SessionUser): { ownerId?: string } {
  return user.role === "admin" ? {} : { ownerId: user.id };
}

export function canOperateGuest(user: SessionUser, guest: { ownerId: string }): boolean {
  return user.role === "admin" || guest.ownerId === user.id;
}

/** A guest's name as this user may be told it: another member's guest stays anonymous. */
export function guestNameFor(user: SessionUser, guest: { name: string; ownerId: string }): string {
  return canOperateGuest(user, guest) ? guest.name : "another member's guest";
}
