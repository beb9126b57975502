import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { pathOf, type PlainMiddleware } from './plain-middleware.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * Gives each request an id (X-Request-Id) and logs one line when it is done.
 * Never bodies or headers: bind bodies carry PSKs, admin answers carry new
 * PSKs, and admin requests carry the bearer token.
 */
export function requestLog(
  log: Logger,
  message: string,
  extra: object = {},
  /** Where the client is; behind a proxy, not the socket's peer. */
  addressOf: (req: IncomingMessage) => string | null | undefined = (req) =>
    req.socket.remoteAddress,
): PlainMiddleware {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    // An id from a proxy in front (nginx's $request_id) is kept when it is a
    // plain token, so both logs tell the same story; otherwise a fresh one.
    const incoming = req.headers['x-request-id'];
    res.locals.requestId =
      typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    res.setHeader('X-Request-Id', res.locals.requestId as string);
    res.on('finish', () => {
      log.info(
        {
          reqId: res.locals.requestId,
          method: req.method,
          path: pathOf(req),
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
          remote: addressOf(req),
          ...extra,
        },
        message,
      );
    });
    next();
  };
}
