import crypto from 'node:crypto';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { deviceEndpointRoutes } from '../device-endpoint/device-endpoint.routes.js';
import { clientAddressOf, requestOrigin } from '../proxy/request-origin.js';
import { errorHandler, notFoundHandler } from './error-handler.js';

export interface AppDeps {
  db: Kysely<Database>;
  config: Config;
  log: Logger;
}

export function createApp({ db, config, log }: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(helmet());
  app.use(requestOrigin(config.proxy));
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.locals.requestId = crypto.randomUUID();
    res.setHeader('X-Request-Id', res.locals.requestId as string);
    res.on('finish', () => {
      // Never log bodies or headers: the bind body carries the PSK.
      log.info(
        {
          reqId: res.locals.requestId,
          method: req.method,
          path: req.path,
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
          remote: clientAddressOf(req),
        },
        'request',
      );
    });
    next();
  });
  app.use(deviceEndpointRoutes(db, config));
  app.use(notFoundHandler);
  app.use(errorHandler(log));
  return app;
}
