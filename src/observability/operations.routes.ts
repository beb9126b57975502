import { Router } from 'express';
import { sql, type Kysely } from 'kysely';
import { isLoopback } from '../admin/admin-net.js';
import { requireAdminToken } from '../admin/admin-auth.js';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { createMigrator } from '../db/migrate.js';
import { renderMetrics } from './metrics.js';
import type { ServerState } from './server-state.js';

/** A readiness check that takes longer than this answers 503 (a stuck database). */
const READY_CHECK_TIMEOUT_MS = 2_000;

/**
 * On the admin listener, for orchestrators and Prometheus:
 * - GET /livez: the process is alive and serving (no token, no database);
 * - GET /readyz: the database answers, every migration is applied, and the
 *   server is not draining; 503 otherwise, with the failing check (no token);
 * - GET /metrics: Prometheus text; open or behind the admin token, see
 *   FLEETGATE_METRICS_ACCESS.
 */
export function operationsRoutes(db: Kysely<Database>, config: Config, state: ServerState): Router {
  const router = Router();
  router.get('/livez', (_req, res) => {
    res.json({ status: 'alive' });
  });

  router.get('/readyz', async (_req, res) => {
    const checks = {
      draining: state.draining ? 'draining' : 'ok',
      database: 'ok',
      migrations: 'ok',
    };
    if (!state.draining) {
      try {
        const pending = await withTimeout(pendingMigrations(db), READY_CHECK_TIMEOUT_MS);
        if (pending.length > 0) checks.migrations = `pending: ${pending.join(', ')}`;
      } catch (err) {
        checks.database = `unreachable: ${(err as Error).message}`;
        checks.migrations = 'unknown';
      }
    }
    const ready = Object.values(checks).every((v) => v === 'ok');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  });

  const metricsOpen =
    config.metricsAccess === 'open' ||
    (config.metricsAccess === 'auto' && isLoopback(config.admin.host));
  const guard = metricsOpen
    ? (_req: unknown, _res: unknown, next: () => void) => next()
    : requireAdminToken(db, config.admin.token);
  router.get('/metrics', guard, (_req, res, next) => {
    renderMetrics().then(({ contentType, body }) => {
      res.setHeader('Content-Type', contentType);
      res.send(body);
    }, next);
  });
  return router;
}

async function pendingMigrations(db: Kysely<Database>): Promise<string[]> {
  await sql`select 1`.execute(db);
  const migrations = await createMigrator(db as Kysely<unknown>).getMigrations();
  return migrations.filter((m) => m.executedAt === undefined).map((m) => m.name);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
