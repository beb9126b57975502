import { sql } from 'kysely';
import type { Logger } from 'pino';
import { startAdminListener } from '../admin/admin-server.js';
import type { Config } from '../config/config.js';
import { acquireDataDirLock } from '../control/data-dir-lock.js';
import { startControlSocket } from '../control/control-socket.js';
import { openDatabase, type DatabaseHandle } from '../db/connect.js';
import { checkDurability } from '../db/durability.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { migrateToLatest } from '../db/migrate.js';
import { createApp } from '../http/app.js';
import { createIngestBackend, partitionMonthsAhead } from '../ingest/ingest-backend.js';
import { PointPartitions, startPartitionMaintenance } from '../ingest/partition-months.js';
import { listen, type Listener } from './listener.js';

export interface RunningServer {
  /** The TCP port, or null when listening on a Unix socket (behind nginx). */
  port: number | null;
  socketPath: string | null;
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
    if (database.kind === 'postgres') await checkDurability(database.db, log);
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
    // Before the device listener, so its log line comes first (the tests read both).
    const admin = await startAdminListener(database.db, config, log);
    if (admin) cleanups.push(admin.close);
    const app = createApp({ db: database.db, config, log, ingest });
    const { server, port, socketPath, stop } = await listen(config, app, log);
    cleanups.push(() => closeHttpServer(server));
    cleanups.push(stop);
    logListening(config, log, { port, socketPath, database, ingest: ingest.method });
    return { port, socketPath, close };
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

function logListening(
  config: Config,
  log: Logger,
  at: Pick<Listener, 'port' | 'socketPath'> & { database: DatabaseHandle; ingest: string },
): void {
  const fields = { database: at.database.kind, location: at.database.location, ingest: at.ingest };
  if (config.proxy.mode === 'off') {
    log.info(
      { port: at.port, host: config.host, ...fields },
      `fleetgate listening on https://localhost:${at.port}/device_endpoint`,
    );
    return;
  }
  const where = at.socketPath ? `unix:${at.socketPath}` : `http://${config.host}:${at.port}`;
  if (!at.socketPath) {
    // Every local process can reach a loopback port and send the header.
    log.warn(
      { port: at.port },
      'proxy mode on a loopback port: any process on this host can claim any certificate; ' +
        'prefer FLEETGATE_LISTEN_SOCKET (a Unix socket only nginx can open)',
    );
  }
  log.info(
    {
      ...(at.socketPath ? { socket: at.socketPath } : { port: at.port, host: config.host }),
      proxyMode: config.proxy.mode,
      certHeader: config.proxy.certHeader,
      ...(at.socketPath ? {} : { trustedProxies: config.proxy.trustedProxies }),
      ...fields,
    },
    `fleetgate listening on ${where} behind ${config.proxy.mode}; devices connect to nginx`,
  );
}

function closeHttpServer(server: Listener['server']): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    // Uploads in flight get a grace period, then their connections are cut
    // (their transactions roll back, so nothing partial is left).
    setTimeout(() => server.closeAllConnections(), 10_000).unref();
  });
}
