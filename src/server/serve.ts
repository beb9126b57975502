import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { acquireDataDirLock } from '../control/data-dir-lock.js';
import { startControlSocket } from '../control/control-socket.js';
import { openDatabase, type DatabaseHandle } from '../db/connect.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { migrateToLatest } from '../db/migrate.js';
import { createApp } from '../http/app.js';
import { createAdminApp } from '../admin/admin-app.js';
import { ensureAdminToken } from '../admin/admin-token.service.js';
import {
  adminHttpsOptions,
  httpsOptions,
  loadServerTlsMaterial,
  type ServerTlsMaterial,
} from './tls-options.js';

export interface RunningServer {
  port: number;
  /** Null when the admin listener is off. */
  adminPort: number | null;
  close(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    if (!config.databaseUrl) {
      const lock = acquireDataDirLock(config.dataDir, 'server');
      if (!lock.acquired) {
        throw new Error(`data directory ${config.dataDir} is in use by process ${lock.holder.pid}`);
      }
      cleanups.push(lock.release);
    }
    const database = await openDatabase(config, log);
    cleanups.push(() => database.close());
    await waitForDatabase(database, log);
    if (config.migrateOnStart) {
      const applied = await migrateToLatest(database.db as never);
      log.info({ applied: applied.map((m) => m.migrationName) }, 'database schema is up to date');
    }
    if (database.kind === 'embedded') {
      const control = await startControlSocket(config.dataDir, database.db, log);
      cleanups.push(() => new Promise<void>((resolve) => control.close(() => resolve())));
    }
    const tls = loadServerTlsMaterial(config, log);
    let adminPort: number | null = null;
    if (config.admin.port !== 'off') {
      const adminServer = await startAdminServer(database, config, config.admin.port, tls, log);
      cleanups.push(() => closeHttpServer(adminServer));
      adminPort = (adminServer.address() as AddressInfo).port;
    }

    const app = createApp({ db: database.db, config, log });
    const server = https.createServer(httpsOptions(tls, config), app);
    server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
    await listen(server, config.port, config.host);
    cleanups.push(() => closeHttpServer(server));
    const port = (server.address() as AddressInfo).port;
    log.info(
      { port, host: config.host, database: database.kind, location: database.location },
      `fleetgate listening on https://localhost:${port}/device_endpoint`,
    );
    return { port, adminPort, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The admin API listens apart from devices: plain HTTP on loopback (only this
 * machine reaches it), TLS with the server certificate anywhere else, since
 * the bearer token must never cross a network in clear.
 */
async function startAdminServer(
  database: DatabaseHandle,
  config: Config,
  port: number,
  tls: ServerTlsMaterial,
  log: Logger,
): Promise<http.Server> {
  const token = await ensureAdminToken(database.db, config.admin.token);
  if (token.newToken) {
    // Straight to the terminal, never through the logger: logs are shipped and kept.
    process.stderr.write(
      `\nfleetgate: generated the admin API token; it is shown this once, store it now:\n\n    ${token.newToken}\n\n` +
        'fleetgate: set FLEETGATE_ADMIN_TOKEN instead, or replace it with `fleetgate admin-token reset`.\n\n',
    );
  }
  const app = createAdminApp({ db: database.db, config }, log);
  const secure = !isLoopback(config.admin.host);
  const server = secure
    ? https.createServer(adminHttpsOptions(tls, config), app)
    : http.createServer({ headersTimeout: config.timeouts.headersMs }, app);
  await listen(server, port, config.admin.host);
  const adminPort = (server.address() as AddressInfo).port;
  const scheme = secure ? 'https' : 'http';
  log.info(
    { adminPort, adminHost: config.admin.host, tls: secure, token: token.source },
    `admin API listening on ${scheme}://${urlHost(config.admin.host)}:${adminPort}/`,
  );
  return server;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

/**
 * A database that is not up yet (container start order, a restart) is waited
 * for with a clear log line per attempt; any other failure (bad credentials,
 * missing database) ends the start at once.
 */
async function waitForDatabase(database: DatabaseHandle, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await sql`select 1`.execute(database.db);
      return;
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      const delayMs = Math.min(500 * 2 ** (attempt - 1), 10_000);
      log.warn(
        {
          attempt,
          retryInMs: delayMs,
          location: database.location,
          reason: (err as Error).message,
        },
        'database unreachable, retrying',
      );
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

function closeHttpServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    // Uploads in flight get a grace period, then their connections are cut
    // (their transactions roll back, so nothing partial is left).
    setTimeout(() => server.closeAllConnections(), 10_000).unref();
  });
}
