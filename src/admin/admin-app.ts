import crypto from 'node:crypto';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { errorHandler, notFoundHandler } from '../http/error-handler.js';
import type { AdminContext } from './admin-route.js';
import { adminRoutes } from './admin.routes.js';

/** The admin API: its own express app on its own listener, never on the device port. */
export function createAdminApp(ctx: AdminContext, log: Logger): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(helmet());
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.locals.requestId = crypto.randomUUID();
    res.setHeader('X-Request-Id', res.locals.requestId as string);
    res.setHeader('Cache-Control', 'no-store');
    res.on('finish', () => {
      // Never the Authorization header, never bodies (PSK secrets go out in them).
      log.info(
        {
          reqId: res.locals.requestId,
          method: req.method,
          path: req.path,
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
          remote: req.socket.remoteAddress,
          admin: true,
        },
        'admin request',
      );
    });
    next();
  });
  app.use(adminRoutes(ctx));
  app.use(notFoundHandler);
  app.use(errorHandler(log));
  return app;
}
