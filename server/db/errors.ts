/** Prisma's foreign-key error (P2003): a row other rows still refer to (with onDelete Restrict). */
export function isForeignKeyViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === "P2003";
}

/** Prisma's unique-constraint error (P2002) on a constraint that includes `field`. */
export function isUniqueViolationOn(err: unknown, field: string): boolean {
  const e = err as { code?: string; meta?: { target?: unknown } } | null;
  if (e?.code !== "P2002") return false;
  const target = e.meta?.target;
  // Driver adapters do not always name the constraint; then assume it is the one asked.
  return Array.isArray(target) ? target.includes(field) : typeof target === "string" ? target.includes(field) : true;
}
