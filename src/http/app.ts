import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import {
  DEVICE_ENDPOINT,
  deviceEndpointRoutes,
  deviceEndpointState,
  hotDeviceRoute,
} from '../device-endpoint/device-endpoint.routes.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import type { Throttles } from '../throttle/throttle.service.js';
import { httpMetrics } from '../observability/metrics.js';
import { clientAddressOf, requestOrigin } from '../proxy/request-origin.js';
import { answerError, errorHandler, notFoundHandler } from './error-handler.js';
import type { PlainMiddleware, PlainResponse } from './plain-middleware.js';
import { requestLog } from './request-log.js';
import { securityHeaders } from './security-headers.js';

export interface AppDeps {
  db: Kysely<Database>;
  config: Config;
  log: Logger;
  ingest: IngestBackend;
  throttles?: Throttles;
}

/**
 * The device listener's request handler: every request goes through the same
 * middlewares (security headers, proxy origin, request log, metrics) and
 * ends in the one error mapping. The two hot routes (status and multipart
 * upload, see hotDeviceRoute) run those middlewares and their handler on
 * Node's own request and response, without express's per-request set-up (it
 * re-parents both objects, which slows every later property access on them,
 * then matches a dozen routes; see BENCHMARKS.md item 6). Everything else is
 * routed by express.
 */
export function createDeviceRequestListener({
  db,
  config,
  log,
  ingest,
  throttles,
}: AppDeps): RequestListener {
  const state = deviceEndpointState(config, throttles);
  const middlewares: PlainMiddleware[] = [
    securityHeaders(),
    requestOrigin(config.proxy),
    requestLog(log, 'request', {}, clientAddressOf),
    httpMetrics({ deviceEndpoint: DEVICE_ENDPOINT }),
  ];
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  for (const middleware of middlewares) app.use(middleware);
  app.use(deviceEndpointRoutes(db, config, ingest, state));
  app.use(notFoundHandler);
  app.use(errorHandler(log));

  const hot = hotDeviceRoute(db, config, ingest, state);
  return (req: IncomingMessage, res: ServerResponse) => {
    const handle = hot(req);
    if (!handle) {
      app(req, res);
      return;
    }
    const plain = res as PlainResponse;
    plain.locals = {};
    // What express's router records of a matched route (the metrics' route label).
    Object.assign(req, { route: { path: DEVICE_ENDPOINT }, baseUrl: '' });
    try {
      for (const middleware of middlewares) {
        let next = false;
        middleware(req, plain, () => (next = true));
        if (!next) throw new Error('a device middleware did not call next synchronously');
      }
    } catch (err) {
      // As express would: a middleware's throw is answered by the error mapping.
      answerError(log, err, req, plain);
      return;
    }
    handle(plain).catch((err: unknown) => answerError(log, err, req, plain));
  };
}
