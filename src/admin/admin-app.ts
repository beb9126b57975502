import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { errorHandler, notFoundHandler } from '../http/error-handler.js';
import { requestLog } from '../http/request-log.js';
import type { AdminContext } from './admin-route.js';
import { adminRoutes } from './admin.routes.js';

/** The admin API: its own express app on its own listener, never on the device port. */
export function createAdminApp(ctx: AdminContext, log: Logger): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(helmet());
  app.use(requestLog(log, 'admin request', { admin: true }));
  app.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  app.use(adminRoutes(ctx));
  app.use(notFoundHandler);
  app.use(errorHandler(log));
  return app;
}
