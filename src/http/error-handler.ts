import { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { isDatabaseUnavailable, isRetryableConflict } from '../db/errors.js';
import { AppError, notFound } from './app-error.js';
import { answerJson } from './json-answer.js';
import { closeAfterAnswer } from './lingering-close.js';
import { rawJsonAnswer } from './raw-answer.js';

/** body-parser reports its own failures with a `type`; give them our codes. */
function fromBodyParser(err: {
  type?: string;
  status?: number;
  message?: string;
}): AppError | null {
  switch (err.type) {
    case 'entity.too.large':
      return new AppError(413, 'body_too_large', 'request body is larger than allowed');
    case 'entity.parse.failed':
      return new AppError(400, 'invalid_json', 'request body is not valid JSON');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError(415, 'unsupported_media_type', err.message ?? 'unsupported encoding');
    case 'request.aborted':
      return new AppError(400, 'request_aborted', 'the client aborted the request');
    default:
      return typeof err.status === 'number' && err.status >= 400 && err.status < 500
        ? new AppError(err.status, 'bad_request', err.message ?? 'bad request')
        : null;
  }
}

/**
 * Node's HTTP parser and timers reject some requests before express sees them
 * (`clientError`); their codes get the same JSON answers as everything else.
 */
function fromHttpParser(err: { code?: unknown }): AppError | null {
  const code = typeof err.code === 'string' ? err.code : '';
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new AppError(431, 'headers_too_large', 'request headers are larger than allowed');
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') {
    return new AppError(408, 'request_timeout', 'the request was not received in time');
  }
  if (code.startsWith('HPE_')) {
    return new AppError(400, 'malformed_request', 'the request is not valid HTTP/1.1');
  }
  return null;
}

/** The one mapping from errors to HTTP answers: `{"error": "...", "code": "..."}`. */
export function toHttpError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const parsed =
    err && typeof err === 'object'
      ? (fromBodyParser(err as object) ?? fromHttpParser(err as object))
      : null;
  if (parsed) return parsed;
  if (isDatabaseUnavailable(err)) {
    return new AppError(503, 'unavailable', 'the database is unavailable, retry later', undefined, {
      'Retry-After': '5',
    });
  }
  if (isRetryableConflict(err)) {
    return new AppError(
      503,
      'conflict_retry',
      'the upload conflicted with a concurrent one of this device and was not stored; retry it',
      undefined,
      { 'Retry-After': '1' },
    );
  }
  return new AppError(500, 'internal_error', 'internal server error');
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => answerError(log, err, req, res);
}

/** What the error handler does, for express's requests and the hot routes' plain ones. */
export function answerError(
  log: Logger,
  err: unknown,
  req: IncomingMessage & { originalUrl?: string },
  res: ServerResponse & { locals: Record<string, unknown> },
): void {
  const appError = toHttpError(err);
  res.locals.errorCode = appError.code; // for the metrics: outcomes by code
  if (appError.status >= 500) {
    log.error(
      { err, reqId: res.locals.requestId, url: req.originalUrl ?? req.url },
      'request failed',
    );
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const [name, value] of Object.entries(appError.headers ?? {})) res.setHeader(name, value);
  // Refused before its body was read: close once answered. Node would otherwise
  // read the rest to keep the connection, with none of the body guard's idle
  // or rate limits, so a client without a certificate could trickle it for
  // FLEETGATE_REQUEST_TIMEOUT_MS. A device that is refused opens a new connection.
  if (hasUnreadBody(req)) closeAfterAnswer(req, res);
  answerJson(res, appError.status, {
    error: appError.message,
    code: appError.code,
    ...(appError.details ? { details: appError.details } : {}),
  });
}

/** Whether the request announced a body that has not been read to its end. */
function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Answers requests the HTTP parser refused (oversized headers, garbage,
 * timeouts) with the usual JSON error, then closes the connection, as Node's
 * default handler would. Nothing is written once a response has started.
 */
export function clientErrorHandler(log: Logger) {
  return (err: Error & { code?: string }, socket: Duplex) => {
    const appError = toHttpError(err);
    if (appError.status >= 500) log.warn({ err: err.message }, 'connection error');
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || inFlight?.headersSent || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    socket.end(rawJsonAnswer(appError.status, { error: appError.message, code: appError.code }));
    // Whatever the client still sends is read and dropped: closing with unread bytes
    // would make the kernel answer with a reset, which can destroy the answer above
    // before the client has read it (a 431 to a client still writing its headers).
    socket.on('data', () => undefined);
    socket.resume();
    // end() flushes the answer first; a client that never reads it is cut off shortly after.
    setTimeout(() => socket.destroy(), 1000).unref();
  };
}

export const notFoundHandler: RequestHandler = (req, _res, next) =>
  next(notFound('not_found', `no route for ${req.method} ${req.path}`));
