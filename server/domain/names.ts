/**
 * Names people give (teams, users), as people mean them: Unicode NFKC (full-width and
 * compatibility forms folded), spaces trimmed and collapsed; and the key two names share
 * when they are one name to people (case folded too), kept under a unique index.
 */
export function normalizeName(raw: string): string {
  return raw.normalize("NFKC").replace(/\s+/gu, " ").trim();
}

export function nameKey(name: string): string {
  return normalizeName(name).toLowerCase().normalize("NFKC");
}

/** A query's filter for the user a name means: as typed, or any spelling of it (case, width). */
export function userNamed(name: string): { OR: Array<{ usernameKey: string } | { username: string }> } {
  return { OR: [{ usernameKey: nameKey(name) }, { username: name }] };
}

/**
 * A guest's name as a host name: lowercase letters, digits and '-' (anything else becomes
 * '-'), at most 63 characters; a name with nothing left is `guest-<id>`.
 */
export function hostLabel(guestName: string, guestId: string): string {
  const label = guestName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/, "");
  return label || `guest-${guestId}`.slice(0, 63);
}
