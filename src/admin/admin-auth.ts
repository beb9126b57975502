import type { RequestHandler } from 'express';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { AppError } from '../http/app-error.js';
import { adminTokenMatches, expectedAdminTokenHash } from './admin-token.service.js';

const challenge = { 'WWW-Authenticate': 'Bearer realm="fleetgate-admin"' };
const unauthenticated = (code: string, message: string) =>
  new AppError(401, code, message, undefined, challenge);

/**
 * `Authorization: Bearer <token>` on every admin request. The expected hash
 * is read per request, so `fleetgate admin-token reset` takes effect at once
 * in every running server. A device certificate counts for nothing here.
 */
export function requireAdminToken(
  db: Kysely<Database>,
  configuredToken: string | undefined,
): RequestHandler {
  return (req, _res, next) => {
    const header = req.headers.authorization;
    const match = header ? /^Bearer +([^\s]+)\s*$/i.exec(header) : null;
    if (!header)
      return next(
        unauthenticated('admin_token_required', 'send Authorization: Bearer <admin token>'),
      );
    if (!match)
      return next(
        unauthenticated(
          'invalid_authorization',
          'the Authorization header must be "Bearer <admin token>"',
        ),
      );
    expectedAdminTokenHash(db, configuredToken).then((expected) => {
      if (!expected || !adminTokenMatches(match[1]!, expected)) {
        return next(unauthenticated('invalid_admin_token', 'the admin token is not valid'));
      }
      next();
    }, next);
  };
}
