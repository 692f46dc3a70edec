/**
 * Browser uploads on the web's own origin, handled before Next.js (a route handler
 * would buffer the body; this streams it):
 *
 *   PUT    /upload/<pool>/<file>?size=N&offset=M   the file's bytes from M on → 201 { sha256, sizeBytes, format, diskId? , iso? }
 *   GET    /upload/<pool>/<file>                   → { offset, uploading }: bytes an interrupted upload has
 *   DELETE /upload/<pool>/<file>                   → 204: stops the upload and removes what it wrote
 *
 * The REST API takes the same at /api/v1/uploads/<pool>/<file>, with an API token
 * (Authorization: Bearer) instead of the session and its Origin, and problem+json errors.
 *
 * Every request is checked in order: the address, the Origin (this dashboard's own
 * pages only), the login session, the names (a storage folder's name and a plain file
 * name), then that nothing of that name is a disk or ISO of the host already. The
 * browser names neither a host nor a path: the host is the local one, and the agent
 * turns the names into a path inside its own folders.
 *
 * The body is piped to the agent with backpressure once the agent has accepted the
 * upload (see forward()), so memory stays flat whatever the size. A Task row (kind "upload") records who uploads what and how far it got; an
 * upload the browser broke off keeps its bytes on the host and can be resumed with
 * `offset` = what GET reports.
 */
import { randomBytes } from "node:crypto";
import type http from "node:http";
import type { AgentClient, ImageRef } from "../agent-client";
import { bearerUser } from "../auth/api-tokens";
import { assertMayCreate, canManageHost, holdsScope } from "../auth/policy";
import { sessionSecretOf, userForSession, type SessionUser } from "../auth/sessions";
import { db } from "../db/client";
import { GuesthouseError, QuotaError, toGuesthouseError } from "../domain/errors";
import { formatBytes } from "../domain/format";
import { API_UPLOAD_PATH, ISO_POOL, UPLOAD_PATH, type TaskStatus, type UploadPart } from "../domain/types";
import { imageFileName, isoName, parseOrThrow, poolName } from "../domain/validation";
import { PROBLEM_TYPE, problemBody } from "./api/problem";
import { registerImage, type Registered } from "./registration";
import { agentFor } from "./guests";
import { recordEvent } from "./audit";
import { localHost } from "./hosts";
import { HOLD_MS, holdIn, releaseHold, withinQuota } from "./quotas";
import { stateHub } from "./state-hub";
import { WEB_TASK_PREFIX } from "./tasks";

/** Progress is written to the Task row at most this often. */
const PROGRESS_EVERY_MS = 1000;
/**
 * A connection that moves no byte for this long is closed (its part kept). Generous:
 * when resuming, the agent first hashes the part it has, and the browser waits meanwhile.
 */
const IDLE_MS = 5 * 60_000;
/** After refusing a body mid-way, keep reading (and discarding) it this long so the browser sees the answer. */
const LINGER_MS = 3000;

export type Host = Awaited<ReturnType<typeof localHost>>;

interface Inflight {
  taskId: string;
  /** The quota hold for the bytes on their way (released when they are a disk or an ISO, or the upload ends). */
  hold: string | null;
  userId: string;
  ref: ImageRef;
  /** Set by whoever cancels it (a DELETE, the tasks page), before the agent is asked to stop it. */
  cancelled: boolean;
}

/**
 * Uploads running through this web process, by host/pool/file. On globalThis: the
 * custom server and Next's bundles (server actions) load this module separately.
 */
const globalForUploads = globalThis as unknown as { guesthouseUploads?: Map<string, Inflight> };
const inflight: Map<string, Inflight> = (globalForUploads.guesthouseUploads ??= new Map());

/** Where uploads are taken: the pages' path, and the REST API's (which answers errors as problem+json). */
const PREFIXES = [UPLOAD_PATH, API_UPLOAD_PATH];

const prefixOf = (req: http.IncomingMessage): string | undefined => {
  const pathname = (req.url ?? "").split("?")[0] ?? "";
  return PREFIXES.find((prefix) => pathname === prefix || pathname.startsWith(`${prefix}/`));
};

export function isUploadRequest(req: http.IncomingMessage): boolean {
  return prefixOf(req) !== undefined;
}

/**
 * Cancels a running upload from outside the page that sends it (the tasks page): that
 * upload, by its task, not whatever holds its file by then. The agent stops it and
 * removes what it wrote; the relay (put below) then answers the browser "cancelled"
 * and records the row so.
 */
export async function cancelUploadTask(task: { id: string; host: { endpoint: string } }): Promise<void> {
  const running = [...inflight.values()].find((u) => u.taskId === task.id);
  if (!running) throw new GuesthouseError("conflict", "This upload is not running any more; reload the page to see how it ended.");
  running.cancelled = true;
  await agentFor(task.host).cancelUpload(running.ref);
}

/** Serves a request under /upload/ (check isUploadRequest first); never throws. */
export function handleUpload(req: http.IncomingMessage, res: http.ServerResponse): void {
  serve(req, res).catch((err) => {
    const error = toGuesthouseError(err);
    if (error.code === "internal") console.error(`upload: ${req.method} ${req.url} failed:`, error.detail ?? error.message);
    refuse(req, res, error);
  });
}

async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  // The raw path, not a URL's: a URL would resolve "%2e%2e" and ".." before the names are checked.
  const [pathname = "", search = ""] = (req.url ?? "").split("?", 2);
  const prefix = prefixOf(req) ?? UPLOAD_PATH;
  const segments = pathname.slice(prefix.length + 1).split("/");
  if (segments.length !== 2 || !segments[0] || !segments[1]) {
    throw new GuesthouseError("not-found", `Uploads go to ${prefix}/<storage folder>/<file name>.`);
  }
  const method = req.method ?? "GET";
  if (method !== "GET" && method !== "PUT" && method !== "DELETE") {
    res.setHeader("allow", "GET, PUT, DELETE");
    return reply(req, res, 405, { error: "Uploads take PUT (the file), GET (how much an interrupted upload has) and DELETE (cancel)." });
  }
  const user = await uploader(req, method);
  const ref = parseTarget(segments[0], segments[1]);
  const host = await localHost();

  // An upload becomes a disk or an ISO of the session's team (private to it until an admin
  // publishes it): only the team's creators may make one.
  if (method === "PUT") assertMayCreate(user, user.teamId);
  if (method === "PUT") return put(req, res, user, host, ref, new URLSearchParams(search));
  if (method === "DELETE") {
    await discardUpload(user, host, ref);
    return void res.writeHead(204).end();
  }
  await assertNameFree(host, ref);
  const offset = await agentFor(host).uploadOffset(ref);
  const running = inflight.get(keyOf(host, ref));
  if (offset > 0 || running) await assertMayTouchPart(user, host, ref, running);
  reply(req, res, 200, { offset, uploading: Boolean(running) });
}

/**
 * Who uploads: an API token (Authorization: Bearer, on the API's path; a PUT or DELETE
 * needs its write scope), or the login session of this dashboard's own pages.
 */
async function uploader(req: http.IncomingMessage, method: string): Promise<SessionUser> {
  const authorization = req.headers.authorization;
  if (authorization !== undefined && prefixOf(req) === API_UPLOAD_PATH) {
    const user = await bearerUser(db, authorization);
    if (method !== "GET" && !holdsScope(user, "write")) throw new GuesthouseError("forbidden", "This needs a token with the write scope.");
    return user;
  }
  // Browsers send Origin with every PUT and DELETE, but not with a same-origin GET.
  if (!originAllowed(req, method === "GET")) {
    throw new GuesthouseError("forbidden", "Uploads must come from this dashboard's own pages.");
  }
  const user = await userForSession(db, sessionSecretOf(req));
  if (!user) throw new GuesthouseError("unauthenticated", "Log in first.");
  return user;
}

/**
 * Cancels an upload, running or interrupted, and removes what it wrote: the DELETE of
 * the page that sends it, or the Remove button of the interrupted uploads' list. Only
 * its owner (the user of the last upload of that name) or an admin may.
 */
export async function discardUpload(user: SessionUser, host: Host, ref: ImageRef): Promise<void> {
  await assertNameFree(host, ref);
  const agent = agentFor(host);
  const offset = await agent.uploadOffset(ref);
  const running = inflight.get(keyOf(host, ref));
  if (offset > 0 || running) await assertMayTouchPart(user, host, ref, running);
  if (running) running.cancelled = true;
  await agent.cancelUpload(ref);
  // An interrupted upload's record said it could be resumed; now it cannot.
  if (!running && offset > 0) {
    const last = await db.task.findFirst({
      where: { hostId: host.id, kind: "upload", state: "failed", target: targetOf(ref) },
      orderBy: { startedAt: "desc" },
      select: { id: true, log: true },
    });
    if (last) {
      const log = [...(JSON.parse(last.log) as string[]), "cancelled; the part was removed"];
      await finishTask(last.id, "cancelled", "Cancelled after it was interrupted; nothing of it was kept.", log);
    }
  }
}

/** An interrupted upload as a page shows it: the agent's facts and who started it. */
export type InterruptedUpload = UploadPart & { owner: string | null };

/**
 * Interrupted uploads of a host that this user may see: every one for an admin, a
 * member's own otherwise (by the last upload of that name; parts nobody recorded are
 * shown to admins only). Null when the agent cannot be reached.
 */
export async function interruptedUploads(user: SessionUser, host: Host): Promise<InterruptedUpload[] | null> {
  const parts = await agentFor(host).uploadParts().catch(() => null);
  if (!parts) return null;
  const rows = await db.task.findMany({
    where: { hostId: host.id, kind: "upload", target: { in: parts.map(targetOf) } },
    orderBy: { startedAt: "desc" },
    select: { target: true, userId: true, user: { select: { username: true } } },
  });
  const last = new Map<string, (typeof rows)[number]>();
  for (const row of rows) if (row.target && !last.has(row.target)) last.set(row.target, row);
  return parts
    .map((p) => ({ ...p, ownerId: last.get(targetOf(p))?.userId ?? null, owner: last.get(targetOf(p))?.user?.username ?? null }))
    .filter((p) => canManageHost(user) || p.ownerId === user.id)
    .map(({ ownerId: _, ...p }) => p);
}

async function put(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  user: SessionUser,
  host: Host,
  ref: ImageRef,
  query: URLSearchParams,
): Promise<void> {
  const size = bytesParam(query.get("size"), "size");
  const offset = query.has("offset") ? bytesParam(query.get("offset"), "offset") : 0;
  if (size < 1) throw new GuesthouseError("invalid-input", "The file is empty; there is nothing to upload.");
  if (offset > size) throw new GuesthouseError("invalid-input", "The offset is past the end of the file.");
  const length = req.headers["content-length"];
  if (length === undefined) return reply(req, res, 411, { error: "The upload must say its length (Content-Length)." });
  if (!/^\d{1,16}$/.test(length) || Number(length) !== size - offset) {
    throw new GuesthouseError("invalid-input", `The body has ${length} bytes, but the file's rest from byte ${offset} is ${size - offset}.`);
  }
  await assertNameFree(host, ref);
  const agent = agentFor(host);
  // An interrupted upload is its owner's, also to start over from byte 0: another member's
  // attempt, refused by the agent, would still be recorded as the last upload of that name
  // and so make them its owner, free to resume or remove it.
  if (offset > 0 || (await agent.uploadOffset(ref)) > 0) await assertMayTouchPart(user, host, ref);
  // The folder must exist and have room; the agent checks again (and its upload limit) before writing.
  const pool = (await agent.host()).pools.find((p) => p.name === ref.pool);
  if (!pool) throw new GuesthouseError("not-found", `This host has no storage folder named "${ref.pool}".`);
  if (size - offset > pool.freeBytes) {
    throw new GuesthouseError("too-large", `The storage folder "${ref.pool}" has ${formatBytes(pool.freeBytes)} free; the file needs ${formatBytes(size - offset)} more.`);
  }
  const key = keyOf(host, ref);
  if (inflight.has(key)) throw new GuesthouseError("conflict", `${ref.file} is being uploaded right now (in another tab or by someone else).`);

  const what = `${ref.pool}/${ref.file}`;
  const task: Inflight = { taskId: `${WEB_TASK_PREFIX}${randomBytes(10).toString("hex")}`, hold: null, userId: user.id, ref, cancelled: false };
  inflight.set(key, task);
  const log: string[] = offset > 0 ? [`resuming from byte ${offset} (${formatBytes(offset)})`] : [];
  // The task as pages following tasks see it (the tasks page's bars), like an agent's task.
  const status: TaskStatus = {
    id: task.taskId,
    kind: "upload",
    title: `upload ${targetOf(ref)} (${formatBytes(size)})`,
    targets: [targetOf(ref)],
    state: "running",
    progress: offset / size,
    startedAt: Date.now(),
    finishedAt: null,
    message: null,
    log,
  };
  // The file's size counts against the team's disk or ISO space from the start (its row
  // checks its real size again), and the upload against its tasks at once.
  const scope = { teamId: user.teamId, userId: user.id };
  const bytes = ref.pool === ISO_POOL ? { isoBytes: size } : { diskBytes: size };
  try {
    task.hold = await withinQuota(scope, { ...bytes, tasks: 1 }, async (tx) => {
      await tx.task.create({
        data: {
          id: task.taskId,
          kind: status.kind,
          title: status.title,
          target: targetOf(ref),
          state: status.state,
          progress: status.progress,
          log: JSON.stringify(log),
          hostId: host.id,
          userId: user.id,
          teamId: user.teamId,
        },
      });
      return holdIn(tx, scope, bytes, HOLD_MS.long);
    });
  } catch (err) {
    inflight.delete(key);
    throw err;
  }
  const publish = () => stateHub.publishTask(host.id, { ...status, log: [...log] });
  const finish = async (state: "succeeded" | "failed" | "cancelled", message: string, diskId: string | null = null) => {
    await finishTask(task.taskId, state, message, log, diskId);
    Object.assign(status, { state, message, finishedAt: Date.now() }, state === "succeeded" ? { progress: 1 } : {});
    publish();
  };

  let received = 0;
  req.setTimeout(IDLE_MS, () => req.destroy(new GuesthouseError("timeout", "The upload stalled.")));
  // Progress for the task list, at most once a second, never two writes at once.
  let written = received;
  let writing: Promise<unknown> = Promise.resolve();
  const ticker = setInterval(() => {
    if (received === written) return;
    written = received;
    status.progress = (offset + written) / size;
    publish();
    writing = writing.then(() => db.task.update({ where: { id: task.taskId }, data: { progress: status.progress } })).catch(() => {});
  }, PROGRESS_EVERY_MS);
  const stopProgress = async () => {
    clearInterval(ticker);
    await writing;
  };

  let result: { sha256: string; sizeBytes: number; format: string };
  try {
    result = await forward(agent, ref, req, size, offset, (n) => (received += n));
  } catch (err) {
    await stopProgress();
    const browserGone = !req.complete && req.destroyed;
    let error = toGuesthouseError(err);
    let state: "failed" | "cancelled" = "failed";
    let message = error.message;
    // Cancelled by a DELETE or from the tasks page (the agent then cuts the connection mid-body).
    if (task.cancelled || (error.code === "conflict" && /cancelled/i.test(error.message))) {
      state = "cancelled";
      message = "Cancelled; nothing of it was kept.";
      error = new GuesthouseError("conflict", "The upload was cancelled.");
    } else if (browserGone) {
      // The agent keeps what arrived; once it has let go of the file, its size is where a resume starts.
      const kept = await partAfterInterruption(host, ref);
      message = `The connection broke after ${formatBytes(offset + received)} of ${formatBytes(size)}${kept ? `; ${formatBytes(kept)} are kept on the host. Choose the same file again to resume the upload` : ""}.`;
      error = new GuesthouseError("invalid-input", message);
    }
    log.push(message);
    await finish(state, message);
    await releaseHold(task.hold);
    inflight.delete(key);
    await recordEvent("upload", false, `upload of ${what} ${state === "cancelled" ? "cancelled" : `failed: ${message}`}`, user, null).catch(() => {});
    if (error.code === "internal") console.error(`upload: ${what} failed:`, error.detail ?? error.message);
    return refuse(req, res, error);
  }
  await stopProgress();
  inflight.delete(key);

  log.push(`sha256 ${result.sha256}`);
  try {
    let extra: { diskId: string; convertedFrom?: string; taskId?: string; file?: string } | { iso: { id: string; name: string } };
    if (ref.pool === ISO_POOL) {
      extra = { iso: await registerIso(user, host, ref, result, task.hold) };
    } else {
      const disk = await registerUpload(user, host, ref, result.sha256, task.hold);
      extra = { diskId: disk.id, ...(disk.convertedFrom ? { convertedFrom: disk.convertedFrom, taskId: disk.taskId, file: disk.file } : {}) };
    }
    const converting = "convertedFrom" in extra && extra.convertedFrom ? `; converting to qcow2 as ${extra.file}` : "";
    const message = `${formatBytes(result.sizeBytes)}, ${result.format}, sha256 ${result.sha256}${converting}`;
    await finish("succeeded", message, "diskId" in extra ? extra.diskId : null);
    await recordEvent("upload", true, `uploaded ${what} (${formatBytes(result.sizeBytes)}, ${result.format})`, user, null).catch(() => {});
    reply(req, res, 201, { ...result, ...extra });
  } catch (err) {
    const error = toGuesthouseError(err);
    log.push(error.message);
    await finish("failed", error.message);
    await releaseHold(task.hold);
    await recordEvent("upload", false, `upload of ${what} failed: ${error.message}`, user, null).catch(() => {});
    throw error;
  }
}

/**
 * Streams the browser's body to the agent. The agent answers `100 Continue` only once it
 * has accepted the upload, and only then is the body read (see AgentClient.upload): a
 * refusal (over the limit, no room, the name taken, a wrong offset) comes back as the
 * agent's own answer while the browser's bytes are still unread, not as a connection
 * closed under them. Per chunk, the web only counts the bytes; the browser going away
 * fails the body, which ends the agent's side too (it keeps the part).
 */
async function forward(agent: AgentClient, ref: ImageRef, req: http.IncomingMessage, size: number, offset: number, onBytes: (n: number) => void) {
  const count = (chunk: Buffer) => onBytes(chunk.length);
  try {
    return await agent.upload(ref, req, size, offset, { onAccepted: () => req.on("data", count) });
  } finally {
    req.off("data", count);
  }
}

/**
 * The new file becomes a disk of this user. A file that cannot be one (an encrypted
 * image, a format guests cannot use) is removed again, so its name is free to retry.
 * One whose name another disk took while it arrived (a conversion's output, say) is
 * kept: the file is the uploader's, whole, and an admin can import it under that name
 * once it is free; removing it would lose it over a name.
 */
async function registerUpload(user: SessionUser, host: Host, ref: ImageRef, sha256: string, hold: string | null): Promise<Registered> {
  try {
    // A vmdk, vdi, vpc or vhdx arrives as the uploader's file: its qcow2 copy is the disk, and it goes.
    return await registerImage(user, host, ref, { sha256, removeAfterConversion: true, hold });
  } catch (err) {
    const error = toGuesthouseError(err);
    if (error.code === "conflict") {
      throw new GuesthouseError("conflict", `${ref.file} arrived whole (SHA-256 ${sha256}), but another disk took its name meanwhile. The file is kept on the host; ask an admin to import it, or upload it again under another name.`);
    }
    if (error.code === "invalid-input" || error.code === "over-quota") {
      await agentFor(host)
        .deleteImage(ref)
        .catch((e) => console.error(`upload: could not remove ${ref.pool}/${ref.file} after refusing it:`, e));
      throw new GuesthouseError(error.code, `${error.message} The uploaded file was removed.`);
    }
    throw error;
  }
}

async function finishTask(id: string, state: "succeeded" | "failed" | "cancelled", message: string, log: string[], diskId: string | null = null) {
  await db.task
    .update({
      where: { id },
      data: {
        state,
        message,
        log: JSON.stringify(log.slice(-50)),
        finishedAt: new Date(),
        ...(state === "succeeded" ? { progress: 1 } : {}),
        ...(diskId ? { diskId } : {}),
      },
    })
    .catch((err) => console.error(`upload: could not record the end of task ${id}:`, err));
}

/**
 * What an interrupted upload kept: waits (10 s at most) until the agent's upload task
 * has let go of the file, so the size is final, then returns it.
 */
async function partAfterInterruption(host: Host, ref: ImageRef): Promise<number> {
  const agent = agentFor(host);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const tasks = await agent.tasks().catch(() => []);
    if (!tasks.some((t) => t.kind === "upload" && t.state === "running" && t.targets.includes(targetOf(ref)))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return agent.uploadOffset(ref).catch(() => 0);
}

function parseTarget(rawPool: string, rawFile: string): ImageRef {
  let pool: string;
  let file: string;
  try {
    pool = decodeURIComponent(rawPool);
    file = decodeURIComponent(rawFile);
  } catch {
    throw new GuesthouseError("invalid-input", "The upload address is not valid (bad %-encoding).");
  }
  pool = parseOrThrow(poolName, pool, "The storage folder's name");
  file = parseOrThrow(imageFileName, file, "The file name");
  if (pool === ISO_POOL) parseOrThrow(isoName, file, "The ISO's name");
  return { pool, file };
}

function bytesParam(value: string | null, name: string): number {
  if (value === null || !/^\d{1,16}$/.test(value)) throw new GuesthouseError("invalid-input", `The upload needs ${name}=<number of bytes>.`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new GuesthouseError("invalid-input", `${name} is too large.`);
  return n;
}

/**
 * An uploaded ISO becomes its team's, private to it (an admin may publish it), with its
 * uploader and SHA-256; its size is checked against the team's ISO space, in the
 * transaction that writes it. Over the quota, the file is removed again.
 */
async function registerIso(user: SessionUser, host: Host, ref: ImageRef, result: { sha256: string; sizeBytes: number }, hold: string | null) {
  const data = { sizeBytes: BigInt(result.sizeBytes), sha256: result.sha256, teamId: user.teamId, uploaderId: user.id, published: false, seenAt: new Date() };
  try {
    return await withinQuota(
      { teamId: user.teamId, userId: user.id },
      { isoBytes: result.sizeBytes },
      (tx) => tx.isoImage.upsert({ where: { hostId_name: { hostId: host.id, name: ref.file } }, create: { hostId: host.id, name: ref.file, ...data }, update: data, select: { id: true, name: true } }),
      { release: hold },
    );
  } catch (err) {
    if (err instanceof GuesthouseError && err.code === "over-quota") {
      await agentFor(host)
        .deleteIso(ref.file)
        .catch((e) => console.error(`upload: could not remove ${ref.file} after refusing it:`, e));
      throw new QuotaError(`${err.message} The uploaded file was removed.`, (err as QuotaError).refusal);
    }
    throw err;
  }
}

/** Refuses a name that is a disk or an ISO of this host already. */
async function assertNameFree(host: Host, ref: ImageRef): Promise<void> {
  if (ref.pool === ISO_POOL) {
    const iso = await db.isoImage.findUnique({ where: { hostId_name: { hostId: host.id, name: ref.file } }, select: { id: true } });
    // Said the same whether or not the asker may see that ISO: the name is all they learn, and they chose it.
    if (iso) throw new GuesthouseError("conflict", `There is already an ISO named ${ref.file} on this host. Choose another name.`);
    return;
  }
  const disk = await db.disk.findFirst({ where: { hostId: host.id, pool: ref.pool, file: ref.file }, select: { id: true } });
  if (disk) throw new GuesthouseError("conflict", `There is already a disk ${ref.file} in "${ref.pool}". Choose another name.`);
}

/**
 * An upload in progress or interrupted belongs to whoever started it (the last upload
 * of that name recorded): others, except admins, may not resume or cancel it. Parts
 * without a recorded upload are anyone's.
 */
async function assertMayTouchPart(user: SessionUser, host: Host, ref: ImageRef, running?: Inflight): Promise<void> {
  if (canManageHost(user)) return;
  if (running && running.userId !== user.id) throw new GuesthouseError("forbidden", `Someone else is uploading ${ref.file}; choose another name.`);
  const last = await db.task.findFirst({
    where: { hostId: host.id, kind: "upload", target: targetOf(ref) },
    orderBy: { startedAt: "desc" },
    select: { userId: true },
  });
  if (last?.userId && last.userId !== user.id) {
    throw new GuesthouseError("forbidden", `Someone else's interrupted upload has the name ${ref.file}; choose another name.`);
  }
}

/** An upload's Task row names its file so: "<pool>/<file>". */
const targetOf = (ref: ImageRef) => `${ref.pool}/${ref.file}`;
const keyOf = (host: Host, ref: ImageRef) => `${host.id}/${ref.pool}/${ref.file}`;

/**
 * Same-origin check: the Origin's host must be the one asked (as the console bridge
 * does). A GET without Origin is a same-origin read (browsers omit it there); a
 * cross-site one is still refused by Sec-Fetch-Site.
 */
function originAllowed(req: http.IncomingMessage, mayOmit: boolean): boolean {
  const origin = req.headers.origin;
  if (!origin) {
    const site = req.headers["sec-fetch-site"];
    return mayOmit && (site === undefined || site === "same-origin" || site === "none");
  }
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function reply(req: http.IncomingMessage, res: http.ServerResponse, status: number, json: unknown, type = "application/json"): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(json);
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  res.end(body);
  lingerOnBody(req);
}

function refuse(req: http.IncomingMessage, res: http.ServerResponse, error: GuesthouseError): void {
  if (prefixOf(req) === API_UPLOAD_PATH) return reply(req, res, error.httpStatus, problemBody(error), PROBLEM_TYPE);
  reply(req, res, error.httpStatus, { error: error.message, code: error.code, ...(error instanceof QuotaError ? { quota: error.refusal } : {}) });
}

/**
 * A refused upload's body is still coming. Closing at once could reset the connection
 * before the browser read the answer; so read and discard it for a few seconds, then close.
 */
function lingerOnBody(req: http.IncomingMessage): void {
  if (req.complete || req.destroyed) return;
  req.unpipe();
  req.resume();
  const timer = setTimeout(() => req.socket.destroy(), LINGER_MS);
  timer.unref();
  req.once("end", () => clearTimeout(timer));
  req.once("close", () => clearTimeout(timer));
}
