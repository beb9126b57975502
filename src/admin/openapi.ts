import { z } from 'zod';
import type { AdminRoute } from './admin-route.js';

type JsonObject = Record<string, unknown>;

/**
 * OpenAPI 3.1 (whose schemas are JSON Schema 2020-12, what zod emits) built
 * from the same route declarations and zod schemas that validate requests.
 */
export function buildOpenApiDocument(routes: readonly AdminRoute[]): JsonObject {
  const paths: Record<string, JsonObject> = {};
  const schemas: Record<string, unknown> = {};
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    paths[path] ??= {};
    paths[path][route.method] = operation(route, schemas);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'fleetgate admin API',
      version: '1',
      description:
        'Manage identities, PSKs and devices, read the audit log and the stored series. ' +
        'Every route but this document needs `Authorization: Bearer <admin token>`.',
    },
    paths,
    components: {
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } },
      schemas: {
        ...schemas,
        Error: {
          type: 'object',
          required: ['error', 'code'],
          properties: {
            error: { type: 'string', description: 'what was wrong, for humans' },
            code: { type: 'string', description: 'machine-readable, e.g. identity_not_found' },
            details: { type: 'object' },
          },
        },
      },
    },
    security: [{ adminToken: [] }],
  };
}

function operation(route: AdminRoute, components: Record<string, unknown>): JsonObject {
  const toSchema = (schema: z.ZodType, io: 'input' | 'output') =>
    jsonSchema(schema, io, components);
  const errorResponse = (description: string) => ({
    description,
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  });
  const responses: JsonObject = {};
  for (const [status, description] of Object.entries(route.responses)) {
    responses[status] =
      Number(status) >= 400
        ? errorResponse(description)
        : {
            description,
            content: Object.fromEntries(
              (route.produces ?? ['application/json']).map((type) => [
                type,
                type === 'application/json' && route.response
                  ? { schema: toSchema(route.response, 'output') }
                  : {},
              ]),
            ),
          };
  }
  responses['400'] ??= errorResponse('invalid input; `details.problems` lists each');
  responses['401'] = errorResponse('missing or wrong admin token');
  return {
    summary: route.summary,
    tags: [route.tag],
    operationId: `${route.method}${route.path.replace(/\/:?(\w)/g, (_m, c: string) => c.toUpperCase()).replace(/\W/g, '')}`,
    parameters: [
      ...parameters(route.params, 'path', toSchema),
      ...parameters(route.query, 'query', toSchema),
    ],
    ...(route.body
      ? {
          requestBody: {
            required: !route.body.safeParse(undefined).success,
            content: { 'application/json': { schema: toSchema(route.body, 'input') } },
          },
        }
      : {}),
    responses,
  };
}

function parameters(
  schema: z.ZodObject | undefined,
  where: 'path' | 'query',
  toSchema: (schema: z.ZodType, io: 'input') => JsonObject,
): JsonObject[] {
  if (!schema) return [];
  return Object.entries(schema.shape).map(([name, field]) => {
    const type = field as z.ZodType;
    const json = toSchema(type, 'input');
    return {
      name,
      in: where,
      required: where === 'path' || !type.safeParse(undefined).success,
      ...(typeof json.description === 'string' ? { description: json.description } : {}),
      schema: json,
    };
  });
}

/**
 * JSON Schema of a zod schema; named schemas (`.meta({ id })`) move from the
 * schema's own $defs into components.schemas and are referenced from there.
 */
function jsonSchema(
  schema: z.ZodType,
  io: 'input' | 'output',
  components: Record<string, unknown>,
): JsonObject {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonObject;
  delete json.$schema;
  const defs = (json.$defs ?? {}) as Record<string, unknown>;
  delete json.$defs;
  for (const [id, def] of Object.entries(defs)) components[id] = pointAtComponents(def);
  return pointAtComponents(json) as JsonObject;
}

function pointAtComponents(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value).replaceAll('"#/$defs/', '"#/components/schemas/'),
  ) as unknown;
}
