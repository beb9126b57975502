import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';
import { z } from 'zod';
import type { AdminContext } from '../admin/admin-route.js';
import { parseInput } from '../admin/admin-route.js';
import { adminTokenMatches, expectedAdminTokenHash } from '../admin/admin-token.service.js';
import { forbidden, unauthorized } from '../http/app-error.js';
import {
  clearedSessionCookie,
  foreignOrigin,
  sameSecret,
  sessionCookie,
  type SessionStore,
} from './sessions.js';

/** src/dashboard/public in the repository, from dist/src/dashboard or src/dashboard. */
export const DASHBOARD_PUBLIC = fileURLToPath(
  new URL(
    import.meta.url.includes('/dist/') ? '../../../src/dashboard/public/' : './public/',
    import.meta.url,
  ),
);

/** uPlot's files, from the installed npm package: the dashboard needs no CDN. */
const UPLOT_DIST = path.join(
  path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')),
  'dist',
);

const ASSETS: Record<string, string> = {
  '/dashboard/app.js': path.join(DASHBOARD_PUBLIC, 'app.js'),
  '/dashboard/app.css': path.join(DASHBOARD_PUBLIC, 'app.css'),
  '/dashboard/uPlot.iife.min.js': path.join(UPLOT_DIST, 'uPlot.iife.min.js'),
  '/dashboard/uPlot.min.css': path.join(UPLOT_DIST, 'uPlot.min.css'),
};

const signIn = z.strictObject({ token: z.string().min(1).max(200) });

/**
 * The dashboard on the admin listener: the page at `/`, its assets, and the
 * cookie session it signs in with. Its data comes from the admin API
 * (`/v1/...`), which accepts the session cookie as well as the Bearer token.
 */
export function dashboardRoutes(ctx: AdminContext, sessions: SessionStore): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    res.sendFile(path.join(DASHBOARD_PUBLIC, 'index.html'));
  });
  for (const [route, file] of Object.entries(ASSETS)) {
    router.get(route, (_req, res) => {
      res.sendFile(file);
    });
  }

  /** Whether this browser is signed in; the CSRF token for its changes. */
  router.get('/dashboard/session', (req, res, next) => {
    const session = sessions.fromRequest(req);
    if (!session) return next(unauthorized('not_signed_in', 'sign in with the admin token'));
    expectedAdminTokenHash(ctx.db, ctx.config.admin.token).then((expected) => {
      if (!expected || !expected.equals(session.tokenHash)) {
        sessions.end(req);
        return next(unauthorized('session_expired', 'sign in to the dashboard again'));
      }
      res.json({ signedIn: true, csrf: session.csrf });
    }, next);
  });

  router.post('/dashboard/session', express.json({ limit: '4kb' }), (req, res, next) => {
    // JSON only: a cross-site form cannot send it without a CORS preflight.
    if (!req.is('application/json') || foreignOrigin(req))
      return next(forbidden('csrf_failed', 'sign in from the dashboard page'));
    let body;
    try {
      body = parseInput(signIn, req.body, 'body');
    } catch (err) {
      return next(err);
    }
    expectedAdminTokenHash(ctx.db, ctx.config.admin.token).then((expected) => {
      if (!expected || !adminTokenMatches(body.token, expected))
        return next(unauthorized('invalid_admin_token', 'the admin token is not valid'));
      const { id, session } = sessions.create(expected);
      res.setHeader('Set-Cookie', sessionCookie(id, req.secure));
      res.status(201).json({ signedIn: true, csrf: session.csrf });
    }, next);
  });

  router.post('/dashboard/signout', (req, res, next) => {
    const session = sessions.fromRequest(req);
    const sent = req.headers['x-csrf-token'];
    if (session && (typeof sent !== 'string' || !sameSecret(sent, session.csrf)))
      return next(forbidden('csrf_failed', 'a dashboard change needs its X-CSRF-Token'));
    sessions.end(req);
    res.setHeader('Set-Cookie', clearedSessionCookie(req.secure));
    res.status(204).end();
  });
  return router;
}
