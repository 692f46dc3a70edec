/**
 * The REST API's request and response bodies, as zod schemas: the server validates what it
 * receives with them, and the OpenAPI document (openapi.ts) is generated from the same
 * ones, so the two cannot drift. Requests are strict (an unknown field is refused).
 */
import { z } from "zod";
import { newTokenInput } from "../../auth/api-tokens";
import { TEAM_ROLES, TOKEN_SCOPES } from "../../auth/policy";
import { CONSOLE_KINDS, SHARE_DURATIONS, SHARE_LABEL_MAX, type ShareDuration } from "../../console/types";
import { GUEST_STATES, POWER_ACTIONS, QUOTA_RESOURCES, TASK_KINDS, TASK_STATES } from "../../domain/types";
import { editHardwareInput, guestDefinitionSchema } from "../../domain/validation";
import { attachInput, convertInput, createDiskInput, resizeInput, snapshotInput } from "../disk-ops";
import { cloneInput } from "../guest-ops";

const SHARE_DURATION_KEYS = Object.keys(SHARE_DURATIONS) as [ShareDuration, ...ShareDuration[]];

/** Every named body of the API: the OpenAPI document's components. */
export const apiSchemas = z.registry<{ id: string; description?: string }>();

export const problem = z
  .object({
    type: z.string().describe("urn:guesthouse:problem:<code>"),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().describe("What happened and what to do, for a person."),
    code: z.string().describe("A stable code (server/domain/errors.ts)."),
    field: z.string().optional().describe("The request field at fault."),
    quota: z
      .object({ teamId: z.string(), resource: z.string(), scope: z.enum(["team", "user"]), used: z.number(), limit: z.number(), asked: z.number() })
      .optional()
      .describe("For code over-quota: the quota, its use, its limit, and what was asked."),
  })
  .register(apiSchemas, { id: "Problem", description: "An error (RFC 9457, application/problem+json)." });

export const guestSummary = z
  .object({
    id: z.string(),
    name: z.string(),
    state: z.enum(GUEST_STATES).nullable().describe("null while the guest's host cannot be reached"),
    vcpus: z.number().int(),
    memoryMiB: z.number().int(),
    isTemplate: z.boolean(),
    tags: z.array(z.string()),
    owner: z.string(),
    team: z.object({ id: z.string(), name: z.string() }),
    host: z.string(),
  })
  .register(apiSchemas, { id: "GuestSummary" });

export const guestList = z
  .object({
    items: z.array(guestSummary),
    page: z.number().int(),
    pageSize: z.number().int(),
    total: z.number().int(),
  })
  .register(apiSchemas, { id: "GuestList" });

export const guestDetail = guestSummary
  .extend({
    machine: z.string(),
    firmware: z.string(),
    sockets: z.number().int(),
    threads: z.number().int(),
    bootOrder: z.array(z.string()),
    display: z.string(),
    serial: z.boolean(),
    description: z.string(),
    disks: z.array(z.object({ id: z.string(), file: z.string(), format: z.string(), bus: z.string(), sizeBytes: z.number(), readOnly: z.boolean() })),
    cdroms: z.array(z.object({ iso: z.string() })),
    nics: z.array(
      z.object({
        mac: z.string(),
        model: z.string(),
        addresses: z
          .object({ ipv4: z.array(z.string()), ipv6: z.array(z.string()) })
          .describe("What the host sees this card use on a managed network (its DHCP lease, the bridge's neighbours), with no agent in the guest; empty while none is known, and for user-mode cards"),
      }),
    ),
    updatedAt: z.string().describe("ISO 8601; its ETag changes with it"),
  })
  .register(apiSchemas, { id: "Guest" });

export const powerRequest = z
  .strictObject({
    action: z.enum(POWER_ACTIONS),
    bootMenu: z.boolean().optional().describe("start only: show the firmware's boot menu this once"),
  })
  .register(apiSchemas, { id: "PowerRequest" });

export const powerResult = z.object({ state: z.enum(GUEST_STATES) }).register(apiSchemas, { id: "PowerResult" });

export const task = z
  .object({
    id: z.string(),
    kind: z.enum(TASK_KINDS),
    title: z.string(),
    state: z.enum(TASK_STATES),
    progress: z.number().nullable(),
    message: z.string().nullable(),
    startedAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .register(apiSchemas, { id: "Task" });

export const tokenView = z
  .object({
    id: z.string(),
    name: z.string(),
    scope: z.enum(TOKEN_SCOPES),
    team: z.object({ id: z.string(), name: z.string() }).nullable(),
    createdAt: z.string(),
    expiresAt: z.string(),
    lastUsedAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
  })
  .register(apiSchemas, { id: "Token" });

export const tokenList = z.object({ items: z.array(tokenView) }).register(apiSchemas, { id: "TokenList" });

/** A new token's fields: the token module's own schema (server/auth/api-tokens.ts). */
export const newToken = newTokenInput.register(apiSchemas, { id: "NewToken" });

export const createdToken = tokenView.extend({ token: z.string().describe("shown this once") }).register(apiSchemas, { id: "CreatedToken" });

// ——— Guests: make, change, delete ———

/** A guest's portable definition (export, import, create): the domain's own schema. */
export const guestDefinition = guestDefinitionSchema.register(apiSchemas, {
  id: "GuestDefinition",
  description: "What Export writes and a create reads: the hardware, with new, empty disks of these sizes. Names no host, path or MAC.",
});

export const hardwareUpdate = editHardwareInput.register(apiSchemas, {
  id: "HardwareUpdate",
  description: "A guest's whole hardware (as its definition names it), its disks by id. Applies at the next start of a running guest.",
});

export const cloneRequest = cloneInput.register(apiSchemas, { id: "CloneRequest", description: "full: copies of every disk; linked (templates only): thin disks on the template's." });

export const deleteResult = z.object({ deletedDisks: z.number().int(), keptDisks: z.number().int() }).register(apiSchemas, { id: "DeleteResult" });

export const consoleRequest = z
  .strictObject({ kind: z.enum(CONSOLE_KINDS).default("vnc"), viewOnly: z.boolean().default(false) })
  .register(apiSchemas, { id: "ConsoleRequest", description: "vnc: the screen (RFB over a websocket); serial: the serial port's bytes." });

export const consoleOpening = z
  .object({
    status: z.enum(["ticket", "wait", "off"]).describe("ticket: connect now; wait: the guest is starting; off: it is not running"),
    url: z.string().optional().describe("ticket: the websocket URL to open (same origin as the API), ticket included"),
    ticket: z.string().optional().describe("ticket: single use, for a few seconds"),
    viewOnly: z.boolean().optional(),
    message: z.string().optional(),
  })
  .register(apiSchemas, { id: "ConsoleOpening" });

export const shareRequest = z
  .strictObject({ duration: z.enum(SHARE_DURATION_KEYS), label: z.string().max(SHARE_LABEL_MAX).default("") })
  .register(apiSchemas, { id: "ShareRequest", description: "A view-only link to the guest's screen." });

export const shareView = z
  .object({ id: z.string(), label: z.string(), state: z.enum(["active", "expired", "revoked"]), createdAt: z.string(), expiresAt: z.string(), createdBy: z.string().nullable() })
  .register(apiSchemas, { id: "Share" });

export const shareList = z.object({ items: z.array(shareView) }).register(apiSchemas, { id: "ShareList" });

export const createdShare = z.object({ url: z.string().describe("shown this once"), expiresAt: z.string() }).register(apiSchemas, { id: "CreatedShare" });

// ——— Disks, ISOs, tasks ———

export const diskView = z
  .object({
    id: z.string(),
    pool: z.string(),
    file: z.string(),
    format: z.string(),
    state: z.enum(["ready", "pending"]),
    encrypted: z.boolean(),
    sizeBytes: z.number(),
    snapshots: z.number().int(),
    bus: z.string(),
    readOnly: z.boolean(),
    guest: z.object({ id: z.string(), name: z.string() }).nullable(),
    owner: z.string(),
    team: z.object({ id: z.string(), name: z.string() }),
    host: z.string(),
    sha256: z.string().nullable(),
  })
  .register(apiSchemas, { id: "Disk" });

export const diskList = z.object({ items: z.array(diskView) }).register(apiSchemas, { id: "DiskList" });

export const newDisk = createDiskInput
  .extend({ encrypt: z.boolean().default(false), passphrase: z.string().max(1024).default("") })
  .register(apiSchemas, { id: "NewDisk", description: "size as people write it: 20G, 512M, 1.5T" });
export const convertRequest = convertInput.register(apiSchemas, { id: "ConvertRequest", description: "Into a new image beside the original, in the same storage folder." });
export const resizeRequest = resizeInput.register(apiSchemas, { id: "ResizeRequest" });
export const snapshotRequest = snapshotInput.register(apiSchemas, { id: "SnapshotRequest" });
export const attachRequest = attachInput.register(apiSchemas, { id: "AttachRequest" });
export const checkResult = z.object({ ok: z.boolean(), report: z.string() }).register(apiSchemas, { id: "CheckResult" });

export const isoView = z
  .object({ name: z.string(), sizeBytes: z.number(), sha256: z.string().nullable(), team: z.string().nullable(), uploader: z.string().nullable(), published: z.boolean(), usedBy: z.array(z.string()) })
  .register(apiSchemas, { id: "Iso" });
export const isoList = z.object({ items: z.array(isoView) }).register(apiSchemas, { id: "IsoList" });
export const publishRequest = z.strictObject({ published: z.boolean() }).register(apiSchemas, { id: "PublishRequest" });

export const taskList = z.object({ items: z.array(task) }).register(apiSchemas, { id: "TaskList" });

export const uploadState = z.object({ offset: z.number(), uploading: z.boolean() }).register(apiSchemas, { id: "UploadState" });
export const uploadResult = z
  .object({ sha256: z.string(), sizeBytes: z.number(), format: z.string(), diskId: z.string().optional(), iso: z.string().optional() })
  .register(apiSchemas, { id: "UploadResult" });

// ——— People, teams, quotas, the audit trail ———

export const userView = z
  .object({
    id: z.string(),
    username: z.string(),
    admin: z.boolean(),
    disabled: z.boolean(),
    secondFactor: z.boolean(),
    sso: z.boolean(),
    teams: z.array(z.object({ id: z.string(), name: z.string(), role: z.enum(TEAM_ROLES) })),
  })
  .register(apiSchemas, { id: "User" });
export const userList = z.object({ items: z.array(userView) }).register(apiSchemas, { id: "UserList" });

export const teamView = z
  .object({
    id: z.string(),
    name: z.string(),
    requireSecondFactor: z.boolean(),
    guests: z.number().int(),
    disks: z.number().int(),
    members: z.array(z.object({ id: z.string(), username: z.string(), role: z.enum(TEAM_ROLES) })).describe("empty unless the caller is in the team or manages it"),
  })
  .register(apiSchemas, { id: "Team" });
export const teamList = z.object({ items: z.array(teamView) }).register(apiSchemas, { id: "TeamList" });
export const membershipRequest = z.strictObject({ role: z.enum(TEAM_ROLES) }).register(apiSchemas, { id: "MembershipRequest" });

export const roleList = z
  .object({ items: z.array(z.object({ role: z.enum(TEAM_ROLES), description: z.string() })) })
  .register(apiSchemas, { id: "RoleList" });

const resourceUsage = z.object({ resource: z.enum(QUOTA_RESOURCES), used: z.number(), limit: z.number().nullable() });
export const quotaOverview = z
  .object({
    items: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        resources: z.array(resourceUsage),
        members: z.array(z.object({ userId: z.string(), username: z.string(), resources: z.array(resourceUsage) })),
      }),
    ),
  })
  .register(apiSchemas, { id: "QuotaOverview", description: "Usage against limits; limit null: none. Bytes for diskBytes and isoBytes, MiB for memoryMiB." });
export const quotaRequest = z
  .strictObject({
    limit: z.string().max(40).nullable().describe("null: no limit; a number, or a size such as 500G for diskBytes and isoBytes, 64G for memoryMiB"),
    userId: z.string().max(64).optional().describe("a member's own limit within the team; left out: the team's"),
  })
  .register(apiSchemas, { id: "QuotaRequest" });
export const quotaResult = z.object({ limit: z.number().nullable() }).register(apiSchemas, { id: "QuotaResult" });

export const auditEvent = z
  .object({
    id: z.string(),
    at: z.string(),
    action: z.string(),
    ok: z.boolean(),
    message: z.string(),
    user: z.string().nullable(),
    role: z.string().nullable(),
    teamId: z.string().nullable(),
    guestId: z.string().nullable(),
    params: z.record(z.string(), z.unknown()).nullable(),
    address: z.string().nullable(),
  })
  .register(apiSchemas, { id: "AuditEvent" });
export const auditList = z.object({ items: z.array(auditEvent) }).register(apiSchemas, { id: "AuditList" });
