import { apiRoute, json } from "@/server/web/api/http";
import { setTeamThresholds, teamThresholds, type TeamThresholds } from "@/server/web/metrics/thresholds";

export const dynamic = "force-dynamic";

/** As the API shows them: a storage folder's threshold has no minutes (it is the fullness now). */
const shown = (t: TeamThresholds) => ({ "guest-cpu": t["guest-cpu"], "guest-memory": t["guest-memory"], "folder-space": { percent: t["folder-space"].percent } });

/** `GET /api/v1/teams/<id>/thresholds`: the team's thresholds (its own, else the defaults). */
export const GET = apiRoute("getThresholds", async ({ user, params }) => json(shown(await teamThresholds(user, params.id!))));

/** `PUT /api/v1/teams/<id>/thresholds` `{ "guest-cpu": { "percent": 90, "minutes": 10 }, "guest-memory": {…}, "folder-space": { "percent": 90 } }`. */
export const PUT = apiRoute("setThresholds", async ({ user, params, body }) => json(shown(await setTeamThresholds(user, params.id!, body))));
