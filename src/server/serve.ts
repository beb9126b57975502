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
import { createIngestBackend, partitionMonthsAhead } from '../ingest/ingest-backend.js';
import { PointPartitions, startPartitionMaintenance } from '../ingest/partition-months.js';
import { httpsOptions, loadServerTlsMaterial } from './tls-options.js';

export interface RunningServer {
  port: number;
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
    const partitions = new PointPartitions();
    cleanups.push(
      await startPartitionMaintenance(database.ddl, partitions, partitionMonthsAhead(config), log),
    );
    const ingest = createIngestBackend(database, partitions);
    const app = createApp({ db: database.db, config, log, ingest });
    const server = https.createServer(
      httpsOptions(loadServerTlsMaterial(config, log), config),
      app,
    );
    server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    cleanups.push(() => closeHttpServer(server));
    const port = (server.address() as AddressInfo).port;
    log.info(
      {
        port,
        host: config.host,
        database: database.kind,
        location: database.location,
        ingest: ingest.method,
      },
      `fleetgate listening on https://localhost:${port}/device_endpoint`,
    );
    return { port, close };
  } catch (err) {
    await close();
    throw err;
  }
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

function closeHttpServer(server: https.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    // Uploads in flight get a grace period, then their connections are cut
    // (their transactions roll back, so nothing partial is left).
    setTimeout(() => server.closeAllConnections(), 10_000).unref();
  });
}
