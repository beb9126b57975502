import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { Express } from 'express';
import pino from 'pino';
import { createAdminApp } from '../../src/admin/admin-app.js';
import type { AdminContext } from '../../src/admin/admin-route.js';

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  slash?: boolean;
  name?: string;
}

/**
 * Every (method, path) the admin express app answers, read from the router
 * stack of an app built by the same factory the server uses: a route added
 * beside the declarations (or a declaration not routed) shows up here. Paths
 * use OpenAPI's `{param}` form; the catch-all 405 handlers (`router.all`) are
 * not routes of their own.
 */
export function servedAdminRoutes(): string[] {
  // Building the app touches neither the database nor the token checks; requests would.
  const ctx = { db: {}, config: { admin: { token: 'unused' } } } as unknown as AdminContext;
  const app = createAdminApp(ctx, pino({ enabled: false })) as Express & {
    router: { stack: Layer[] };
  };
  const served: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (on && method !== '_all')
            served.push(`${method} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
        }
      } else if (layer.handle?.stack) {
        // A router mounted under a path would prefix its routes; this walk does not know them.
        if (!layer.slash)
          throw new Error(`a router mounted under a path (${layer.name}): extend the walk`);
        walk(layer.handle.stack);
      }
    }
  };
  walk(app.router.stack);
  return served;
}

/** `method path` of every operation the document lists. */
export function documentedOperations(doc: { paths: Record<string, object> }): string[] {
  return Object.entries(doc.paths).flatMap(([path, operations]) =>
    Object.keys(operations).map((method) => `${method} ${path}`),
  );
}

type Validate = (body: unknown) => ErrorObject[] | null;

// ajv-formats is CommonJS: its default export arrives as the module object under NodeNext.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv2020) => Ajv2020;

/**
 * A validator for the success answer of one operation, from the published
 * document itself (JSON Schema 2020-12, as OpenAPI 3.1 says), strictly: ajv in
 * strict mode with formats checked, the document's `additionalProperties:
 * false` honoured, so an undocumented field fails.
 */
export function answerValidator(
  doc: {
    paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    components: { schemas: Record<string, unknown> };
  },
  method: string,
  path: string,
  status: number,
): Validate {
  const operation = doc.paths[path]?.[method];
  if (!operation) throw new Error(`${method} ${path} is not documented`);
  const response = operation.responses[String(status)] as
    { content?: Record<string, { schema?: object }> } | undefined;
  const schema = response?.content?.['application/json']?.schema;
  if (!schema) throw new Error(`${method} ${path} documents no JSON answer for ${status}`);
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  // The document's references point into components; the same schemas as $defs of one schema.
  const rewrite = (value: unknown) =>
    JSON.parse(JSON.stringify(value).replaceAll('"#/components/schemas/', '"#/$defs/')) as object;
  const validate = ajv.compile({ ...rewrite(schema), $defs: rewrite(doc.components.schemas) });
  return (body) => (validate(body) ? null : (validate.errors ?? []));
}
