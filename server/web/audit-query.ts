/**
 * The audit page's filters from its query string (also the CSV export's), checked:
 * a filter that does not parse is left out and said so, never guessed.
 */
import type { AuditFilter } from "./audit";

export const AUDIT_PAGE_SIZE = 200;
/** Rows a CSV export holds at most. */
export const AUDIT_EXPORT_MAX = 100_000;

type Params = Record<string, string | string[] | undefined>;

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)?.trim().slice(0, 100) || undefined;

export function auditFilterOf(params: Params): { filter: AuditFilter; problems: string[] } {
  const problems: string[] = [];
  const date = (name: string, endOfDay: boolean) => {
    const text = one(params[name]);
    if (!text) return undefined;
    const at = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T${endOfDay ? "23:59:59.999" : "00:00:00"}Z` : text);
    if (Number.isNaN(at.getTime())) {
      problems.push(`"${text}" is not a date (use YYYY-MM-DD); the ${name} filter is left out.`);
      return undefined;
    }
    return at;
  };
  const action = one(params.action);
  if (action && !/^[a-z-]{1,40}$/.test(action)) problems.push(`"${action}" is no action name; the action filter is left out.`);
  return {
    filter: {
      user: one(params.user),
      teamId: one(params.team),
      action: action && /^[a-z-]{1,40}$/.test(action) ? action : undefined,
      target: one(params.target),
      from: date("from", false),
      to: date("to", true),
    },
    problems,
  };
}

/** The same filters as a query string, for the export link. */
export function auditQueryString(params: Params): string {
  const q = new URLSearchParams();
  for (const name of ["user", "team", "action", "target", "from", "to"]) {
    const v = one(params[name]);
    if (v) q.set(name, v);
  }
  return q.toString();
}
