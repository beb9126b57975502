import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { dashboardRoutes } from '../dashboard/dashboard.routes.js';
import { SessionStore } from '../dashboard/sessions.js';
import { errorHandler, notFoundHandler } from '../http/error-handler.js';
import { requestLog } from '../http/request-log.js';
import { httpMetrics } from '../observability/metrics.js';
import { operationsRoutes } from '../observability/operations.routes.js';
import { createServerState, type ServerState } from '../observability/server-state.js';
import type { AdminContext } from './admin-route.js';
import { adminRoutes } from './admin.routes.js';

/** The admin API: its own express app on its own listener, never on the device port. */
export function createAdminApp(
  ctx: AdminContext,
  log: Logger,
  state: ServerState = createServerState(),
): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // The dashboard's page uses a canvas (uPlot) and its own scripts only: helmet's CSP
  // (script-src 'self') holds; uPlot sets element styles from script, which CSP allows.
  app.use(helmet());
  app.use(requestLog(log, 'admin request', { admin: true }));
  app.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  app.use(httpMetrics());
  // Health and metrics: before the admin routes and their token check.
  app.use(operationsRoutes(ctx.db, ctx.config, state));
  const sessions = new SessionStore();
  app.use(dashboardRoutes(ctx, sessions));
  app.use(adminRoutes(ctx, sessions));
  app.use(notFoundHandler);
  app.use(errorHandler(log));
  return app;
}
