/**
 * The OpenAPI 3.1 document of `/api/v1`, generated: its operations are the endpoint
 * table's (endpoints.ts), its components the zod schemas the server validates with
 * (schemas.ts, through zod's own JSON Schema output; a request body as it may be sent,
 * with its defaults optional, an answer as it is sent). The API tests validate real
 * answers against this document.
 */
import { z } from "zod";
import { MAX_BODY_BYTES } from "./http";
import { ENDPOINTS, type Endpoint } from "./endpoints";
import { apiSchemas } from "./schemas";

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const idOf = (schema: z.ZodType): string => {
  const id = apiSchemas.get(schema)?.id;
  if (!id) throw new Error("openapi: a schema of the endpoint table is not registered in schemas.ts");
  return id;
};

const PROBLEM_TEXT: Record<number, string> = {
  304: "Unchanged since the If-None-Match ETag",
  400: "The request is not valid (the field at fault is named)",
  401: "No working token or session",
  403: "Not allowed (the policy, the token's scope, or a quota)",
  404: "No such thing, or not the caller's to see",
  409: "Not in this state",
  412: "Changed since the If-Match ETag was read",
  413: `The body is over ${MAX_BODY_BYTES} bytes`,
  429: "Too many requests; wait Retry-After seconds",
};

/** A query schema's fields as OpenAPI parameters. */
function queryParameters(query: z.ZodObject): object[] {
  const schema = z.toJSONSchema(query, { io: "input", unrepresentable: "any" }) as { properties?: Record<string, object>; required?: string[] };
  return Object.entries(schema.properties ?? {}).map(([name, { description, ...property }]: [string, { description?: string }]) => ({
    name,
    in: "query",
    required: schema.required?.includes(name) ?? false,
    schema: property,
    ...(description ? { description } : {}),
  }));
}

function operation(op: string, e: Endpoint): object {
  const pathParams = [...e.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({ name, in: "path", required: true, schema: { type: "string" } }));
  const problems = [...new Set([...e.problems, ...(e.public ? [] : [401, 429])])].sort();
  return {
    operationId: op,
    summary: e.summary,
    ...(e.public ? { security: [] } : {}),
    description: `${e.public ? "Public." : `Token scope: ${e.scope} at least.`}${e.ifMatch ? " Send If-Match with the ETag you read: a guest changed since gets 412." : ""}`,
    parameters: [...pathParams, ...(e.query ? queryParameters(e.query) : []), ...(e.ifMatch ? [{ name: "If-Match", in: "header", required: false, schema: { type: "string" } }] : [])],
    ...(e.body ? { requestBody: { required: true, content: { "application/json": { schema: ref(idOf(e.body)) } } } } : {}),
    ...(e.streamed ? { requestBody: { required: e.method === "PUT", content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } } } : {}),
    responses: {
      [String(e.ok.status)]: {
        description: e.ok.description,
        ...(e.ok.headers ? { headers: Object.fromEntries(Object.entries(e.ok.headers).map(([name, description]) => [name, { description, schema: { type: "string" } }])) } : {}),
        ...(e.ok.schema ? { content: { "application/json": { schema: ref(idOf(e.ok.schema)) } } } : e.ok.contentType ? { content: { [e.ok.contentType]: { schema: { type: "string" } } } } : {}),
      },
      ...Object.fromEntries(
        problems.map((status) => [
          String(status),
          status === 304 ? { description: PROBLEM_TEXT[304] } : { description: PROBLEM_TEXT[status] ?? "A problem", content: { "application/problem+json": { schema: ref("Problem") } } },
        ]),
      ),
    },
  };
}

let cached: object | null = null;

export function openApiDocument(): object {
  if (cached) return cached;
  const endpoints = Object.entries(ENDPOINTS) as Array<[string, Endpoint]>;
  const requestIds = new Set(endpoints.flatMap(([, e]) => (e.body ? [idOf(e.body)] : [])));
  const generate = (io: "input" | "output") => z.toJSONSchema(apiSchemas, { uri: (id) => `#/components/schemas/${id}`, io, unrepresentable: "any" }).schemas;
  const [asSent, asAnswered] = [generate("input"), generate("output")];
  // Each component is a schema of the document, not a document of its own.
  const components = Object.fromEntries(
    Object.keys(asAnswered).map((id) => {
      const { $schema: _s, $id: _i, ...schema } = (requestIds.has(id) ? asSent : asAnswered)[id]!;
      return [id, schema];
    }),
  );
  const paths: Record<string, Record<string, object>> = {};
  for (const [op, e] of endpoints) (paths[e.path] ??= {})[e.method.toLowerCase()] = operation(op, e);
  cached = {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "Guesthouse API",
      version: "1",
      description:
        "Guests, disks, ISOs, consoles, tasks, events, tokens, teams, quotas and the audit trail of a Guesthouse dashboard. " +
        "Authenticate with a personal API token (your account page): Authorization: Bearer gh_…. Errors are application/problem+json with a stable code. " +
        "Long operations answer 202 with their task; GET /tasks/{id}?wait=30 waits for it.",
    },
    servers: [{ url: "/api/v1" }],
    security: [{ token: [] }],
    paths,
    components: { schemas: components, securitySchemes: { token: { type: "http", scheme: "bearer", description: "A personal API token (account page)" } } },
  };
  return cached;
}
