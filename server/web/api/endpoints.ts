/**
 * Every operation of the REST API, in one table: its method and path, what it is for,
 * the query it reads and the body it takes (zod schemas, which the server validates
 * with: apiRoute() in http.ts takes them from here), and what it answers. The OpenAPI
 * document (openapi.ts) is generated from this table and from schemas.ts, and the API
 * tests check that every route file under app/api/v1 serves exactly the operations
 * listed here for its path, so the document cannot leave one out.
 */
import { z } from "zod";
import { QUOTA_RESOURCES } from "../../domain/types";
import * as m from "./metric-schemas";
import * as n from "./network-schemas";
import * as s from "./schemas";

/** A whole number in a query string, from `min` to `max`. */
const whole = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,7}$/, `${name} is a whole number from ${min} to ${max}.`)
    .transform(Number)
    .pipe(z.number().min(min, `${name} is a whole number from ${min} to ${max}.`).max(max, `${name} is a whole number from ${min} to ${max}.`));

export const PAGE_SIZE_MAX = 500;

export interface Answer {
  status: number;
  /** The body's schema (a component of the document), if it has one. */
  schema?: z.ZodType;
  description: string;
  headers?: Record<string, string>;
  /** Another content type than JSON (the event stream). */
  contentType?: string;
}

export interface Endpoint {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** The path under /api/v1, with {name} for path parameters. */
  path: string;
  summary: string;
  /** What it needs: the token scope at least (the policy decides the rest). */
  scope: "read" | "operate" | "write" | "admin";
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Honours If-Match: a stale version gets 412. */
  ifMatch?: boolean;
  ok: Answer;
  /** The problems it may answer with, besides 401 and 429, which any may. */
  problems: number[];
  /** Needs no token. */
  public?: boolean;
  /** Served by the web's own upload handler (server/web/uploads.ts), not a Next route. */
  streamed?: boolean;
}

const guestListQuery = z.strictObject({
  page: whole("page", 1, 1_000_000).optional(),
  pageSize: whole("pageSize", 1, PAGE_SIZE_MAX).optional(),
  q: z.string().max(64).optional().describe("names containing this"),
  team: z.string().max(64).optional().describe("a team's id"),
  tag: z.string().max(32).optional(),
  template: z.enum(["true", "false"]).optional().describe("only templates, or only guests"),
});
const waitQuery = z.strictObject({ wait: whole("wait", 0, 60).optional().describe("seconds to wait for the task to end") });
const deleteQuery = z.strictObject({ disks: z.enum(["delete", "keep"]).optional().describe("the guest's disks: deleted, or kept detached (the default)") });
const taskListQuery = z.strictObject({ state: z.enum(["running", "succeeded", "failed", "cancelled"]).optional(), limit: whole("limit", 1, 500).optional() });
const auditQuery = z.strictObject({
  user: z.string().max(100).optional(),
  team: z.string().max(64).optional(),
  action: z.string().regex(/^[a-z-]{1,40}$/, "action is an action's name, such as start or disk-create.").optional(),
  target: z.string().max(100).optional(),
  from: z.iso.datetime({ offset: true }).or(z.iso.date()).optional(),
  to: z.iso.datetime({ offset: true }).or(z.iso.date()).optional(),
  limit: whole("limit", 1, 1000).optional(),
});
const uploadQuery = z.strictObject({ size: whole("size", 1, 2 ** 46 - 1), offset: whole("offset", 0, 2 ** 46 - 1).optional() });

const json = (status: number, schema: z.ZodType, description: string, headers?: Record<string, string>): Answer => ({ status, schema, description, headers });
const none = (description: string): Answer => ({ status: 204, description });

export const ENDPOINTS = {
  // Guests
  listGuests: { method: "GET", path: "/guests", summary: "The guests the caller may see, in name order, a page at a time", scope: "read", query: guestListQuery, ok: json(200, s.guestList, "A page of guests"), problems: [400] },
  createGuest: {
    method: "POST", path: "/guests", summary: "A new guest from a definition (new, empty disks of its sizes); import is this with an exported definition", scope: "write",
    body: s.guestDefinition, ok: json(201, s.guestDetail, "The guest", { Location: "The guest's URL", ETag: "Its version" }), problems: [400, 403, 409, 413],
  },
  getGuest: { method: "GET", path: "/guests/{id}", summary: "One guest; its ETag changes whenever its row does (a start too)", scope: "read", ok: json(200, s.guestDetail, "The guest", { ETag: "Its version" }), problems: [304, 404] },
  deleteGuest: { method: "DELETE", path: "/guests/{id}", summary: "Deletes a stopped guest, keeping its disks detached unless disks=delete", scope: "write", query: deleteQuery, ifMatch: true, ok: json(200, s.deleteResult, "Deleted"), problems: [400, 403, 404, 409, 412] },
  getDefinition: { method: "GET", path: "/guests/{id}/definition", summary: "The guest's portable definition (Export)", scope: "read", ok: json(200, s.guestDefinition, "The definition"), problems: [404] },
  updateHardware: {
    method: "PUT", path: "/guests/{id}/hardware", summary: "Replaces the guest's hardware; a running guest gets it at its next start", scope: "write",
    body: s.hardwareUpdate, ifMatch: true, ok: json(200, s.guestDetail, "The guest as it is now", { ETag: "Its new version" }), problems: [400, 403, 404, 409, 412, 413],
  },
  cloneGuest: { method: "POST", path: "/guests/{id}/clone", summary: "A full or linked clone of a stopped guest or template", scope: "write", body: s.cloneRequest, ok: json(201, s.guestDetail, "The clone", { Location: "The clone's URL" }), problems: [400, 403, 404, 409] },
  makeTemplate: { method: "POST", path: "/guests/{id}/template", summary: "Turns a stopped guest into a template", scope: "write", ifMatch: true, ok: json(200, s.guestDetail, "The template"), problems: [403, 404, 409, 412] },
  powerGuest: { method: "POST", path: "/guests/{id}/power", summary: "Start, shut down, reboot, reset, pause, resume, force off or restart a guest", scope: "operate", body: s.powerRequest, ok: json(200, s.powerResult, "Its state after it"), problems: [400, 403, 404, 409, 413] },
  openConsole: {
    method: "POST", path: "/guests/{id}/console", summary: "A single-use ticket and the websocket URL of the guest's screen or serial port (view-only: read scope)", scope: "read",
    body: s.consoleRequest, ok: json(200, s.consoleOpening, "A ticket, or why there is none yet"), problems: [400, 403, 404, 409],
  },
  listShares: { method: "GET", path: "/guests/{id}/shares", summary: "The view-only links to the guest's screen", scope: "read", ok: json(200, s.shareList, "The links"), problems: [403, 404] },
  createShare: { method: "POST", path: "/guests/{id}/shares", summary: "A view-only link to the guest's screen, shown this once", scope: "write", body: s.shareRequest, ok: json(201, s.createdShare, "The link"), problems: [400, 403, 404] },
  revokeShare: { method: "DELETE", path: "/guests/{id}/shares/{shareId}", summary: "Ends a view-only link at once", scope: "write", ok: none("Revoked"), problems: [400, 403, 404, 409] },
  // Disks
  listDisks: { method: "GET", path: "/disks", summary: "The disks the caller may see", scope: "read", ok: json(200, s.diskList, "The disks"), problems: [] },
  createDisk: { method: "POST", path: "/disks", summary: "A new, empty, sparse image, optionally encrypted (qcow2 with LUKS)", scope: "write", body: s.newDisk, ok: json(201, s.diskView, "The disk", { Location: "The disk's URL" }), problems: [400, 403, 409, 413] },
  getDisk: { method: "GET", path: "/disks/{id}", summary: "One disk", scope: "read", ok: json(200, s.diskView, "The disk"), problems: [404] },
  deleteDisk: { method: "DELETE", path: "/disks/{id}", summary: "Deletes a detached disk and its file", scope: "write", ok: none("Deleted"), problems: [403, 404, 409] },
  convertDisk: {
    method: "POST", path: "/disks/{id}/convert", summary: "Converts into a new image beside it, in the background", scope: "write",
    body: s.convertRequest, ok: json(202, s.task, "The task (the new disk is pending until it ends)", { Location: "The task's URL" }), problems: [400, 403, 404, 409],
  },
  resizeDisk: { method: "POST", path: "/disks/{id}/resize", summary: "Grows (or, with shrink, shrinks) the image; live while a guest runs it", scope: "write", body: s.resizeRequest, ok: json(200, s.diskView, "The disk"), problems: [400, 403, 404, 409] },
  snapshotDisk: { method: "POST", path: "/disks/{id}/snapshots", summary: "Creates, reverts to or deletes an internal snapshot (qcow2)", scope: "write", body: s.snapshotRequest, ok: json(200, s.diskView, "The disk"), problems: [400, 403, 404, 409] },
  checkDisk: { method: "POST", path: "/disks/{id}/check", summary: "Checks the image for errors (qemu-img check)", scope: "operate", ok: json(200, s.checkResult, "The report"), problems: [403, 404, 409] },
  attachDisk: { method: "POST", path: "/disks/{id}/attach", summary: "Attaches a detached disk to a guest (hot-plugged when it runs)", scope: "write", body: s.attachRequest, ok: json(200, s.diskView, "The disk"), problems: [400, 403, 404, 409] },
  detachDisk: { method: "POST", path: "/disks/{id}/detach", summary: "Detaches a disk from its guest (unplugged when it runs)", scope: "write", ok: json(200, s.diskView, "The disk"), problems: [403, 404, 409] },
  uploadStatus: { method: "GET", path: "/uploads/{pool}/{file}", summary: "How many bytes an interrupted upload has (resume from there)", scope: "read", ok: json(200, s.uploadState, "The upload"), problems: [400, 403], streamed: true },
  upload: {
    method: "PUT", path: "/uploads/{pool}/{file}", summary: "Uploads an image (pool isos: an ISO) as raw bytes from offset on; resumable", scope: "write", query: uploadQuery,
    ok: json(201, s.uploadResult, "The disk or ISO it became"), problems: [400, 403, 409, 413], streamed: true,
  },
  cancelUpload: { method: "DELETE", path: "/uploads/{pool}/{file}", summary: "Stops an upload and removes what it wrote", scope: "write", ok: none("Stopped"), problems: [400, 403, 404], streamed: true },
  setLink: { method: "POST", path: "/guests/{id}/nics/{index}/link", summary: "Sets a running guest's network card's link up or down (a pulled cable); index from 0", scope: "operate", body: n.linkRequest, ok: none("Done"), problems: [400, 403, 404, 409] },
  reserveAddress: {
    method: "PUT", path: "/guests/{id}/nics/{index}/reservation", summary: "A card's fixed address and host name on its NAT or isolated network, applied at once (its next DHCP renewal)", scope: "write",
    body: n.reservationRequest, ok: none("Done"), problems: [400, 403, 404, 409],
  },
  // Networks
  listNetworks: { method: "GET", path: "/networks", summary: "The networks of the caller's teams (every team's for admins)", scope: "read", ok: json(200, n.networkList, "The networks"), problems: [] },
  createNetwork: {
    method: "POST", path: "/networks", summary: "A managed NAT or isolated network of the caller's team, set up on the host", scope: "write",
    body: n.newNetwork, ok: json(201, n.networkView, "The network", { Location: "The network's URL", ETag: "Its version" }), problems: [400, 403, 409],
  },
  getNetwork: { method: "GET", path: "/networks/{id}", summary: "One network with its cards, forwards and firewall", scope: "read", ok: json(200, n.networkView, "The network", { ETag: "Its version" }), problems: [404] },
  deleteNetwork: { method: "DELETE", path: "/networks/{id}", summary: "Removes a managed network no card is on, and all it had on the host", scope: "write", ok: none("Removed"), problems: [403, 404, 409] },
  updateNetworkRules: {
    method: "PUT", path: "/networks/{id}/rules", summary: "Replaces the network's port forwards and firewall (applied in one transaction on the host)", scope: "write",
    body: n.rulesUpdate, ifMatch: true, ok: json(200, n.networkView, "The network as it is now", { ETag: "Its new version" }), problems: [400, 403, 404, 409, 412],
  },
  networkAddresses: { method: "GET", path: "/networks/{id}/addresses", summary: "The network's addresses: the gateway and each lease, with the guest holding it", scope: "read", ok: json(200, n.addressTable, "The addresses"), problems: [404, 409] },
  networkCounters: { method: "GET", path: "/networks/{id}/counters", summary: "What each firewall rule, the defaults and the spoofing checks matched", scope: "read", ok: json(200, n.counters, "The counters"), problems: [404, 409] },
  testForward: { method: "POST", path: "/networks/{id}/forwards/test", summary: "Connects from the host to one of the network's TCP forwards: whether the guest answered", scope: "operate", body: n.forwardTest, ok: json(200, n.forwardTestResult, "What happened"), problems: [400, 403, 404] },
  // Metrics
  guestMetrics: {
    method: "GET", path: "/guests/{id}/metrics", summary: "The guest's history over a range: each field's min, average and max per point (10 s points for an hour, 1 min for a day or week, 1 h for a month or year)", scope: "read",
    query: m.rangeQuery, ok: json(200, m.guestSeries, "The history, in columns"), problems: [400, 404],
  },
  guestMetricsLive: {
    method: "GET", path: "/guests/{id}/metrics/live", summary: "A running guest's samples since `after` (ms); while asked every second or two, the host samples it every second", scope: "read",
    query: m.liveQuery, ok: json(200, m.liveSamples, "The samples, oldest first"), problems: [400, 404, 409],
  },
  guestMetricsCurrent: { method: "GET", path: "/guests/{id}/metrics/current", summary: "A running guest's counters now: per vCPU, disk (with its allocated size) and NIC (or why it has none)", scope: "read", ok: json(200, m.guestCurrent, "The counters"), problems: [404, 409] },
  hostMetrics: { method: "GET", path: "/hosts/{id}/metrics", summary: "The host's history over a range (admins, a read token enough)", scope: "read", query: m.rangeQuery, ok: json(200, m.hostSeries, "The history, in columns"), problems: [400, 403, 404] },
  hostMetricsCurrent: {
    method: "GET", path: "/hosts/{id}/metrics/current", summary: "The host now: CPU, memory, load, each storage folder's free space, overcommit, running guests, thresholds crossed (admins, a read token enough)", scope: "read",
    ok: json(200, m.hostCurrent, "The host's figures"), problems: [403, 404],
  },
  topConsumers: {
    method: "GET", path: "/metrics/top", summary: "Top consumers: every guest the caller may see, ranked by one field now or on average over the last hour or day", scope: "read",
    query: m.topQuery, ok: json(200, m.consumerList, "The guests, highest first"), problems: [400],
  },
  guestFigures: {
    method: "GET", path: "/metrics/guests", summary: "CPU and memory now of each running guest the caller may see (or of those named), with the thresholds each crosses: the guest list's figures", scope: "read",
    query: m.figuresQuery, ok: json(200, m.guestFigures, "The figures"), problems: [400],
  },
  // ISOs
  listIsos: { method: "GET", path: "/isos", summary: "The ISOs the caller's team may use", scope: "read", ok: json(200, s.isoList, "The ISOs"), problems: [] },
  deleteIso: { method: "DELETE", path: "/isos/{name}", summary: "Deletes an uploaded ISO no guest uses", scope: "write", ok: none("Deleted"), problems: [400, 403, 404, 409] },
  publishIso: { method: "PUT", path: "/isos/{name}/published", summary: "Offers an uploaded ISO to every team, or takes it back (admins)", scope: "admin", body: s.publishRequest, ok: none("Done"), problems: [400, 403, 404] },
  // Tasks and events
  listTasks: { method: "GET", path: "/tasks", summary: "The caller's tasks (admins: everyone's), newest first", scope: "read", query: taskListQuery, ok: json(200, s.taskList, "The tasks"), problems: [400] },
  getTask: { method: "GET", path: "/tasks/{id}", summary: "A task; with wait, answered once it ended or after that many seconds", scope: "read", query: waitQuery, ok: json(200, s.task, "The task"), problems: [400, 404] },
  cancelTask: { method: "POST", path: "/tasks/{id}/cancel", summary: "Stops a running task; what it wrote is removed", scope: "write", ok: json(200, s.task, "The task"), problems: [404, 409] },
  events: {
    method: "GET", path: "/events", summary:
      "Server-sent events: `guest` {id, state} as guests the caller may see change, `addresses` {id, nics: [{mac, network, ipv4, ipv6}]} as the addresses the host sees their cards use on managed networks change, `task` as their tasks move", scope: "read",
    ok: { status: 200, description: "An event stream (text/event-stream)", contentType: "text/event-stream" }, problems: [],
  },
  // Tokens
  listTokens: { method: "GET", path: "/tokens", summary: "The caller's API tokens (never the tokens themselves)", scope: "read", ok: json(200, s.tokenList, "The tokens"), problems: [] },
  createToken: { method: "POST", path: "/tokens", summary: "A new API token, shown in this answer only", scope: "read", body: s.newToken, ok: json(201, s.createdToken, "The token"), problems: [400, 403, 413] },
  revokeToken: { method: "DELETE", path: "/tokens/{id}", summary: "Revokes one of the caller's tokens at once", scope: "read", ok: none("Revoked"), problems: [404] },
  // People, teams, quotas, audit
  listUsers: { method: "GET", path: "/users", summary: "Every account (admins)", scope: "admin", ok: json(200, s.userList, "The users"), problems: [403] },
  listTeams: { method: "GET", path: "/teams", summary: "The caller's teams (admins: all), with members where the caller may see them", scope: "read", ok: json(200, s.teamList, "The teams"), problems: [] },
  listRoles: { method: "GET", path: "/roles", summary: "The roles a member may hold in a team", scope: "read", ok: json(200, s.roleList, "The roles"), problems: [] },
  setMembership: {
    method: "PUT", path: "/teams/{id}/members/{username}", summary: "Adds someone to the team or changes their role (the team's owners, admins)", scope: "admin",
    body: s.membershipRequest, ok: none("Done"), problems: [400, 403, 404, 409],
  },
  removeMembership: { method: "DELETE", path: "/teams/{id}/members/{username}", summary: "Removes someone from the team (the team's owners, admins)", scope: "admin", ok: none("Removed"), problems: [403, 404, 409] },
  getThresholds: { method: "GET", path: "/teams/{id}/thresholds", summary: "The team's thresholds, its own or the defaults (whoever works in the team, admins)", scope: "read", ok: json(200, m.teamThresholds, "The thresholds"), problems: [404] },
  setThresholds: {
    method: "PUT", path: "/teams/{id}/thresholds", summary: "Sets the team's thresholds, every kind at once (the team's owners, admins)", scope: "admin",
    body: m.thresholdsRequest, ok: json(200, m.teamThresholds, "The thresholds now"), problems: [400, 403, 404],
  },
  getQuotas: { method: "GET", path: "/quotas", summary: "Usage against limits of the teams the caller may see it of", scope: "read", ok: json(200, s.quotaOverview, "The usage"), problems: [] },
  setQuota: {
    method: "PUT", path: "/teams/{id}/quotas/{resource}", summary: `Sets or clears a team's (or a member's) limit (admins); resource: ${QUOTA_RESOURCES.join(", ")}`, scope: "admin",
    body: s.quotaRequest, ok: json(200, s.quotaResult, "The limit now"), problems: [400, 403, 404],
  },
  listAudit: { method: "GET", path: "/audit", summary: "The audit trail the caller may read (admins: all; owners: their teams'), newest first", scope: "admin", query: auditQuery, ok: json(200, s.auditList, "The events"), problems: [400, 403] },
  openApi: { method: "GET", path: "/openapi.json", summary: "This document", scope: "read", public: true, ok: { status: 200, description: "The OpenAPI 3.1 document" }, problems: [] },
} as const satisfies Record<string, Endpoint>;

export type OperationId = keyof typeof ENDPOINTS;
