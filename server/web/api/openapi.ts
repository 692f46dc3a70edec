/**
 * The OpenAPI 3.1 document of `/api/v1`, generated: its components are the zod schemas
 * the server validates with (schemas.ts, through zod's own JSON Schema output), its paths
 * the table below. The API tests validate real answers against this document.
 */
import { z } from "zod";
import { apiSchemas } from "./schemas";

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const jsonBody = (id: string) => ({ "application/json": { schema: ref(id) } });
const problems = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [String(s), { description: PROBLEM_TEXT[s] ?? "A problem", content: { "application/problem+json": { schema: ref("Problem") } } }]));
const PROBLEM_TEXT: Record<number, string> = {
  400: "The request is not valid (the field at fault is named)",
  401: "No working token or session",
  403: "Not allowed (the policy, the token's scope, or a quota)",
  404: "No such thing, or not the caller's to see",
  409: "Not in this state",
  413: "The body is over 1 MiB",
};
const idParam = (what: string) => ({ name: "id", in: "path", required: true, schema: { type: "string" }, description: `The ${what}'s id` });

const PATHS = {
  "/guests": {
    get: {
      operationId: "listGuests",
      summary: "The guests the caller may see, in name order",
      parameters: [
        { name: "page", in: "query", schema: { type: "integer", minimum: 1, default: 1 } },
        { name: "pageSize", in: "query", schema: { type: "integer", minimum: 1, maximum: 500, default: 100 } },
      ],
      responses: { "200": { description: "A page of guests", content: jsonBody("GuestList") }, ...problems(400, 401) },
    },
  },
  "/guests/{id}": {
    get: {
      operationId: "getGuest",
      summary: "One guest; its ETag changes whenever it does",
      parameters: [idParam("guest")],
      responses: {
        "200": { description: "The guest", headers: { ETag: { schema: { type: "string" } } }, content: jsonBody("Guest") },
        "304": { description: "Unchanged since the If-None-Match ETag" },
        ...problems(401, 404),
      },
    },
  },
  "/guests/{id}/power": {
    post: {
      operationId: "powerGuest",
      summary: "Start, shut down, reboot, reset, pause, resume, force off or restart a guest",
      parameters: [idParam("guest")],
      requestBody: { required: true, content: jsonBody("PowerRequest") },
      responses: { "200": { description: "The guest's state after it", content: jsonBody("PowerResult") }, ...problems(400, 401, 403, 404, 409, 413) },
    },
  },
  "/tasks/{id}": {
    get: {
      operationId: "getTask",
      summary: "A task; with wait, answered once it ended or after that many seconds",
      parameters: [idParam("task"), { name: "wait", in: "query", schema: { type: "integer", minimum: 0, maximum: 60, default: 0 } }],
      responses: { "200": { description: "The task", content: jsonBody("Task") }, ...problems(400, 401, 404) },
    },
  },
  "/tokens": {
    get: { operationId: "listTokens", summary: "The caller's API tokens", responses: { "200": { description: "The tokens", content: jsonBody("TokenList") }, ...problems(401) } },
    post: {
      operationId: "createToken",
      summary: "A new API token, shown in this answer only",
      requestBody: { required: true, content: jsonBody("NewToken") },
      responses: { "201": { description: "The token", content: jsonBody("CreatedToken") }, ...problems(400, 401, 403, 413) },
    },
  },
  "/tokens/{id}": {
    delete: { operationId: "revokeToken", summary: "Revokes one of the caller's tokens at once", parameters: [idParam("token")], responses: { "204": { description: "Revoked" }, ...problems(401, 404) } },
  },
};

let cached: object | null = null;

export function openApiDocument(): object {
  if (cached) return cached;
  const { schemas } = z.toJSONSchema(apiSchemas, { uri: (id) => `#/components/schemas/${id}`, io: "output" });
  // Each component is a schema of the document, not a document of its own.
  const components = Object.fromEntries(Object.entries(schemas).map(([id, { $schema: _s, $id: _i, ...schema }]) => [id, schema]));
  cached = {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: { title: "Guesthouse API", version: "1", description: "Guests, tasks and tokens of a Guesthouse dashboard. Authenticate with a personal API token: Authorization: Bearer gh_…" },
    servers: [{ url: "/api/v1" }],
    security: [{ token: [] }],
    paths: PATHS,
    components: { schemas: components, securitySchemes: { token: { type: "http", scheme: "bearer", description: "A personal API token (account page)" } } },
  };
  return cached;
}
