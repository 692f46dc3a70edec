/**
 * The REST API's request and response bodies, as zod schemas: the server validates what it
 * receives with them, and the OpenAPI document (openapi.ts) is generated from the same
 * ones, so the two cannot drift. Requests are strict (an unknown field is refused).
 */
import { z } from "zod";
import { newTokenInput } from "../../auth/api-tokens";
import { TOKEN_SCOPES } from "../../auth/policy";
import { GUEST_STATES, POWER_ACTIONS, TASK_KINDS, TASK_STATES } from "../../domain/types";

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
    nics: z.array(z.object({ mac: z.string(), model: z.string() })),
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
