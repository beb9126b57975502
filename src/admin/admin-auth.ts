import type { RequestHandler } from 'express';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { foreignOrigin, sameSecret, type SessionStore } from '../dashboard/sessions.js';
import { AppError, forbidden } from '../http/app-error.js';
import { adminTokenMatches, expectedAdminTokenHash } from './admin-token.service.js';

const challenge = { 'WWW-Authenticate': 'Bearer realm="fleetgate-admin"' };
const unauthenticated = (code: string, message: string) =>
  new AppError(401, code, message, undefined, challenge);

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * `Authorization: Bearer <token>` on every admin request, or a dashboard
 * session cookie (then every state change also needs the session's
 * X-CSRF-Token and no foreign Origin). The expected hash is read per request,
 * so `fleetgate admin-token reset` takes effect at once in every running
 * server, and ends every dashboard session. A device certificate counts for
 * nothing here.
 */
export function requireAdminToken(
  db: Kysely<Database>,
  configuredToken: string | undefined,
  sessions?: SessionStore,
): RequestHandler {
  return (req, _res, next) => {
    const header = req.headers.authorization;
    const session = !header && sessions ? sessions.fromRequest(req) : undefined;
    if (session) {
      if (!SAFE_METHODS.has(req.method)) {
        const sent = req.headers['x-csrf-token'];
        if (typeof sent !== 'string' || !sameSecret(sent, session.csrf) || foreignOrigin(req))
          return next(forbidden('csrf_failed', 'a dashboard change needs its X-CSRF-Token'));
      }
      expectedAdminTokenHash(db, configuredToken).then((expected) => {
        if (!expected || !expected.equals(session.tokenHash))
          return next(unauthenticated('session_expired', 'sign in to the dashboard again'));
        next();
      }, next);
      return;
    }
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
