import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { Actor } from '../audit/actor.js';
import type { SessionStore } from '../dashboard/sessions.js';
import { methodNotAllowed, unsupportedMediaType } from '../http/app-error.js';
import { requireAdminToken } from './admin-auth.js';
import { parseInput, type AdminContext, type AdminRoute } from './admin-route.js';
import { auditRoutes } from './audit.handlers.js';
import { authorityRoutes, replaceCertificateRoute } from './authorities.handlers.js';
import { deviceRoutes } from './devices.handlers.js';
import { identityRoutes } from './identities.handlers.js';
import { buildOpenApiDocument } from './openapi.js';
import { pskRoutes } from './psks.handlers.js';
import { registrationRoutes } from './registrations.handlers.js';
import { rotationRoutes } from './rotations.handlers.js';
import { seriesRoutes } from './series.handlers.js';

/** Every authenticated admin endpoint; the OpenAPI document is built from this list. */
export const ADMIN_ROUTES: readonly AdminRoute[] = [
  ...identityRoutes,
  ...registrationRoutes,
  ...pskRoutes,
  replaceCertificateRoute,
  ...deviceRoutes,
  ...rotationRoutes,
  ...authorityRoutes,
  ...seriesRoutes,
  ...auditRoutes,
];

export const OPENAPI_PATH = '/openapi.json';

export function adminRoutes(ctx: AdminContext, sessions?: SessionStore): Router {
  const router = Router();
  const document = buildOpenApiDocument(ADMIN_ROUTES);
  // The document describes the API, not the fleet: served without a token.
  router.get(OPENAPI_PATH, (_req, res) => {
    res.json(document);
  });

  router.use(requireAdminToken(ctx.db, ctx.config.admin.token, sessions));
  router.use(express.json({ limit: '64kb', type: ['application/json', 'application/*+json'] }));
  const allowed = new Map<string, string[]>();
  for (const route of ADMIN_ROUTES) {
    allowed.set(route.path, [...(allowed.get(route.path) ?? []), route.method.toUpperCase()]);
    router[route.method](route.path, (req: Request, res: Response, next: NextFunction) => {
      const actor: Actor = { kind: 'admin-api', remoteAddress: req.socket.remoteAddress ?? null };
      let input;
      try {
        if (route.body && req.headers['content-type'] && !req.is('application/json')) {
          throw unsupportedMediaType('send the request body as application/json');
        }
        input = {
          params: parseInput(route.params, req.params, 'path'),
          query: parseInput(route.query, req.query, 'query'),
          body: parseInput(route.body, emptyAsUndefined(req.body), 'body'),
          actor,
        };
      } catch (err) {
        return next(err);
      }
      // Parsed by the route's own schemas just above: the types adminRoute() declared hold.
      route.handle(ctx, input as never, req, res).catch(next);
    });
  }
  for (const [path, methods] of allowed) {
    router.all(path, (req) => {
      throw methodNotAllowed(req.method, methods.join(', '));
    });
  }
  return router;
}

/** express.json leaves no body as undefined, but an empty object as {}; treat both as none. */
function emptyAsUndefined(body: unknown): unknown {
  return body && typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0
    ? undefined
    : body;
}
