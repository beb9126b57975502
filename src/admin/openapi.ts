import { z } from 'zod';
import type { AdminRoute } from './admin-route.js';

type JsonObject = Record<string, unknown>;

/**
 * OpenAPI 3.1 (whose schemas are JSON Schema 2020-12, what zod emits) built
 * from the same route declarations and zod schemas that validate requests.
 */
export function buildOpenApiDocument(routes: readonly AdminRoute[]): JsonObject {
  const paths: Record<string, JsonObject> = {};
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    paths[path] ??= {};
    paths[path][route.method] = operation(route);
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

function operation(route: AdminRoute): JsonObject {
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
              (route.produces ?? ['application/json']).map((type) => [type, {}]),
            ),
          };
  }
  responses['400'] ??= errorResponse('invalid input; `details.problems` lists each');
  responses['401'] = errorResponse('missing or wrong admin token');
  return {
    summary: route.summary,
    tags: [route.tag],
    operationId: `${route.method}${route.path.replace(/\/:?(\w)/g, (_m, c: string) => c.toUpperCase()).replace(/\W/g, '')}`,
    parameters: [...parameters(route.params, 'path'), ...parameters(route.query, 'query')],
    ...(route.body
      ? {
          requestBody: {
            required: !route.body.safeParse(undefined).success,
            content: { 'application/json': { schema: jsonSchema(route.body) } },
          },
        }
      : {}),
    responses,
  };
}

function parameters(schema: z.ZodObject | undefined, where: 'path' | 'query'): JsonObject[] {
  if (!schema) return [];
  return Object.entries(schema.shape).map(([name, field]) => {
    const type = field as z.ZodType;
    const json = jsonSchema(type);
    return {
      name,
      in: where,
      required: where === 'path' || !type.safeParse(undefined).success,
      ...(typeof json.description === 'string' ? { description: json.description } : {}),
      schema: json,
    };
  });
}

function jsonSchema(schema: z.ZodType): JsonObject {
  const rest = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
  }) as JsonObject;
  delete rest.$schema;
  return rest;
}
