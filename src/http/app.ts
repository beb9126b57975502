import crypto from 'node:crypto';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { deviceEndpointRoutes } from '../device-endpoint/device-endpoint.routes.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import { errorHandler, notFoundHandler } from './error-handler.js';

export interface AppDeps {
  db: Kysely<Database>;
  config: Config;
  log: Logger;
  ingest: IngestBackend;
}

export function createApp({ db, config, log, ingest }: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(helmet());
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
          remote: req.socket.remoteAddress,
        },
        'request',
      );
    });
    next();
  });
  app.use(deviceEndpointRoutes(db, config, ingest));
  app.use(notFoundHandler);
  app.use(errorHandler(log));
  return app;
}
