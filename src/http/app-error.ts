/**
 * The one error type of fleetgate. Anything a client did wrong, or anything the
 * service cannot do right now, is thrown as an AppError; `toHttp` in
 * error-handler.ts is the single place that turns it into an HTTP answer.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Extra response headers, e.g. Retry-After on 429/503. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const badRequest = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(400, code, message, details);
export const unauthorized = (code: string, message: string) => new AppError(401, code, message);
export const forbidden = (code: string, message: string) => new AppError(403, code, message);
export const notFound = (code: string, message: string) => new AppError(404, code, message);
export const conflict = (code: string, message: string) => new AppError(409, code, message);
export const tooLarge = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(413, code, message, details);
export const unsupportedMediaType = (message: string) =>
  new AppError(415, 'unsupported_media_type', message);
export const tooManyRequests = (
  code: string,
  message: string,
  retryAfterSeconds: number,
  headers: Record<string, string> = {},
) =>
  new AppError(429, code, message, undefined, {
    ...headers,
    'Retry-After': String(retryAfterSeconds),
  });
export const unavailable = (message: string, retryAfterSeconds = 5) =>
  new AppError(503, 'unavailable', message, undefined, {
    'Retry-After': String(retryAfterSeconds),
  });
export const methodNotAllowed = (method: string, allow: string) =>
  new AppError(405, 'method_not_allowed', `${method} is not allowed here`, undefined, {
    Allow: allow,
  });
