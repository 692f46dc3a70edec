/** The API's disks and ISOs: lists and single disks as the API shows them; changes run the disk pages' own operations (disk-ops.ts). */
import type { z } from "zod";
import { ownedWhere } from "../../auth/policy";
import type { SessionUser } from "../../auth/sessions";
import { db } from "../../db/client";
import { GuesthouseError } from "../../domain/errors";
import { loadDisk } from "../disks";
import { localHost } from "../hosts";
import { isosFor } from "../isos";
import type { diskView, isoView } from "./schemas";

const listInclude = {
  host: { select: { name: true } },
  owner: { select: { username: true } },
  team: { select: { id: true, name: true } },
  guest: { select: { id: true, name: true } },
};

type Shown = { id: string; pool: string; file: string; format: string; state: string; encrypted: boolean; sizeBytes: bigint; snapshotCount: number; bus: string; readOnly: boolean; sha256: string | null };

function diskJson(d: Shown, rest: { host: string; owner: string; team: { id: string; name: string }; guest: { id: string; name: string } | null }): z.infer<typeof diskView> {
  return {
    id: d.id,
    pool: d.pool,
    file: d.file,
    format: d.format,
    state: d.state === "pending" ? "pending" : "ready",
    encrypted: d.encrypted,
    sizeBytes: Number(d.sizeBytes),
    snapshots: d.snapshotCount,
    bus: d.bus,
    readOnly: d.readOnly,
    sha256: d.sha256,
    ...rest,
  };
}

/** The disks `user` may see, by storage folder and name. */
export async function listDisks(user: SessionUser): Promise<Array<z.infer<typeof diskView>>> {
  const rows = await db.disk.findMany({ where: ownedWhere(user, "view"), orderBy: [{ pool: "asc" }, { file: "asc" }], include: listInclude });
  return rows.map((d) => diskJson(d, { host: d.host.name, owner: d.owner.username, team: d.team, guest: d.guest }));
}

/** One disk as the API shows it. */
export async function showDisk(user: SessionUser, id: string): Promise<z.infer<typeof diskView>> {
  const d = await loadDisk(user, id, "view");
  const team = await db.team.findUniqueOrThrow({ where: { id: d.teamId }, select: { id: true, name: true } });
  return diskJson(d, { host: d.host.name, owner: d.owner.username, team, guest: d.guest ? { id: d.guest.id, name: d.guest.name } : null });
}

/** The ISOs the caller's team may use (admins: every one), as the disks page lists them. */
export async function listIsos(user: SessionUser): Promise<Array<z.infer<typeof isoView>>> {
  const isos = await isosFor(user, await localHost(), user.teamId, { all: user.admin });
  if (!isos) throw new GuesthouseError("agent-unreachable", "The host's agent cannot be reached, so its ISOs cannot be listed. Try again shortly.");
  return isos.map(({ name, sizeBytes, sha256, team, uploader, published, usedBy }) => ({ name, sizeBytes, sha256, team, uploader, published, usedBy }));
}

