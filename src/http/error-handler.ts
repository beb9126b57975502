import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../db/errors.js';
import { AppError, notFound } from './app-error.js';

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

/** The one mapping from errors to HTTP answers: `{"error": "...", "code": "..."}`. */
export function toHttpError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const parsed = err && typeof err === 'object' ? fromBodyParser(err as object) : null;
  if (parsed) return parsed;
  if (isDatabaseUnavailable(err)) {
    return new AppError(503, 'unavailable', 'the database is unavailable, retry later', undefined, {
      'Retry-After': '5',
    });
  }
  return new AppError(500, 'internal_error', 'internal server error');
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const appError = toHttpError(err);
    if (appError.status >= 500) {
      log.error({ err, reqId: res.locals.requestId, url: req.originalUrl }, 'request failed');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const [name, value] of Object.entries(appError.headers ?? {})) res.setHeader(name, value);
    res.status(appError.status).json({
      error: appError.message,
      code: appError.code,
      ...(appError.details ? { details: appError.details } : {}),
    });
  };
}

export const notFoundHandler: RequestHandler = (req, _res, next) =>
  next(notFound('not_found', `no route for ${req.method} ${req.path}`));
