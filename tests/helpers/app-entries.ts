/** The app folder's entry points, read from its files: each page, and each route with the HTTP methods it exports. */
import fs from "node:fs";
import path from "node:path";

export interface AppEntry {
  /** The file, relative to `root`'s parent app folder ("api/v1/guests/[id]/route.ts"). */
  file: string;
  kind: "page" | "route";
  /** A route's exported methods (GET, POST, …); none for a page. */
  methods: string[];
}

export function appEntries(dir = "app", app = "app"): AppEntry[] {
  const entries: AppEntry[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) entries.push(...appEntries(full, app));
    else if (entry.name === "page.tsx") entries.push({ file: path.relative(app, full), kind: "page", methods: [] });
    else if (entry.name === "route.ts") {
      const methods = [...fs.readFileSync(full, "utf8").matchAll(/^export (?:const|async function) (GET|POST|PUT|PATCH|DELETE)\b/gm)].map(([, m]) => m!);
      entries.push({ file: path.relative(app, full), kind: "route", methods });
    }
  }
  return entries;
}
