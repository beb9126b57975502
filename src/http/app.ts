import express, { type Express } from 'express';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import {
  DEVICE_ENDPOINT,
  deviceEndpointRoutes,
} from '../device-endpoint/device-endpoint.routes.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import type { Throttles } from '../throttle/throttle.service.js';
import { httpMetrics } from '../observability/metrics.js';
import { clientAddressOf, requestOrigin } from '../proxy/request-origin.js';
import { errorHandler, notFoundHandler } from './error-handler.js';
import { requestLog } from './request-log.js';
import { securityHeaders } from './security-headers.js';

export interface AppDeps {
  db: Kysely<Database>;
  config: Config;
  log: Logger;
  ingest: IngestBackend;
  throttles?: Throttles;
}

export function createApp({ db, config, log, ingest, throttles }: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(securityHeaders());
  app.use(requestOrigin(config.proxy));
  app.use(requestLog(log, 'request', {}, clientAddressOf));
  app.use(httpMetrics({ deviceEndpoint: DEVICE_ENDPOINT }));
  app.use(deviceEndpointRoutes(db, config, ingest, throttles));
  app.use(notFoundHandler);
  app.use(errorHandler(log));
  return app;
}
