import { sql } from 'kysely';
import type { Logger } from 'pino';
import { announceAdminToken, startAdminListener } from '../admin/admin-server.js';
import type { Config } from '../config/config.js';
import { acquireDataDirLock } from '../control/data-dir-lock.js';
import { startControlSocket } from '../control/control-socket.js';
import { writeRunNote } from '../control/run-file.js';
import { openDatabase, type DatabaseHandle } from '../db/connect.js';
import { checkDurability } from '../db/durability.js';
import { isDatabaseUnavailable, isPoolerRefusingOptions } from '../db/errors.js';
import { migrateToLatest } from '../db/migrate.js';
import { hasCitus } from '../db/citus.repository.js';
import { setOnCitus } from '../db/citus-mode.js';
import { createDeviceRequestListener } from '../http/app.js';
import { createIngestBackend, partitionMonthsAhead } from '../ingest/ingest-backend.js';
import { PointPartitions, startPartitionMaintenance } from '../ingest/partition-months.js';
import { watchDbPool, watchTlsHandshakes } from '../observability/metrics.js';
import { createServerState } from '../observability/server-state.js';
import { createThrottles } from '../throttle/throttle.service.js';
import { startMqttBroker } from '../mqtt/mqtt-broker.js';
import { attachWebSocketChannel } from '../websocket/websocket-channel.js';
import { listen, type Listener } from './listener.js';
import { loadServerTlsMaterial } from './tls-options.js';
import { openSharedState } from './shared-state.js';

export interface RunningServer {
  /** The TCP port, or null when listening on a Unix socket (behind nginx). */
  port: number | null;
  socketPath: string | null;
  close(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const state = createServerState();
  let closing: Promise<void> | undefined;
  // Draining: /readyz answers 503 at once; the device listener accepts nothing
  // new, requests in flight finish (up to FLEETGATE_DRAIN_TIMEOUT_MS, then they
  // are cut and roll back); the admin listener and the database go last.
  const close = () =>
    (closing ??= (async () => {
      state.draining = true;
      for (const cleanup of cleanups.reverse()) await cleanup();
    })());
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
    if (database.pool) cleanups.push(watchDbPool(database.pool));
    if (database.kind === 'postgres') cleanups.push(leaveRunNote(config, database.location, log));
    await waitForDatabase(database, log);
    if (database.kind === 'postgres') await checkDurability(database.db, log);
    if (config.migrateOnStart) {
      const applied = await migrateToLatest(database.db as never);
      log.info({ applied: applied.map((m) => m.migrationName) }, 'database schema is up to date');
    }
    if (database.kind === 'embedded') {
      const control = await startControlSocket(
        config.dataDir,
        database.db,
        log,
        config.admin.token !== undefined,
      );
      cleanups.push(() => new Promise<void>((resolve) => control.close(() => resolve())));
    }
    if (database.kind === 'postgres' && (await hasCitus(database.db as never))) {
      setOnCitus(true);
      log.info('database is a Citus cluster: tables are distributed by device');
    }
    const partitions = new PointPartitions();
    cleanups.push(
      await startPartitionMaintenance(database.ddl, partitions, partitionMonthsAhead(config), log),
    );
    const ingest = createIngestBackend(database, partitions);
    // Before the device listener, so its log line comes first (the tests read both).
    const admin = await startAdminListener(database.db, config, log, state);
    if (admin) cleanups.push(admin.close);
    const shared = await openSharedState(config, database, log);
    cleanups.push(() => shared.close());
    const throttles = createThrottles(config.throttle, shared.throttleStore);
    const app = createDeviceRequestListener({ db: database.db, config, log, ingest, throttles });
    const { server, port, socketPath, stop } = await listen(config, app, log, shared.resumption);
    const websocket = attachWebSocketChannel(
      server,
      { db: database.db, ingest, config, throttles },
      log,
    );
    if (config.proxy.mode === 'off') watchTlsHandshakes(server);
    cleanups.push(() => drainHttpServer(server, config.drainTimeoutMs, log));
    cleanups.push(stop);
    // Runs first (cleanups run in reverse): WebSockets would keep the HTTP server from closing.
    cleanups.push(() => websocket.close());
    if (config.mqtt.port !== 'off') {
      const mqtt = await startMqttBroker(
        { db: database.db, ingest, config, throttles },
        loadServerTlsMaterial(config, log),
        log,
      );
      // Runs before the HTTP drain: publishes in flight get their PUBACK first.
      cleanups.push(() => mqtt.close());
      log.info(
        { mqttPort: mqtt.port, host: config.host },
        `MQTT over TLS listening on mqtts://localhost:${mqtt.port}`,
      );
    }
    if (admin) await announceAdminToken(database.db, config, log);
    logListening(config, log, { port, socketPath, database, ingest: ingest.method });
    return { port, socketPath, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The note that tells a CLI without DATABASE_URL which database this server
 * uses. A data directory that cannot be written (a read-only working
 * directory on PostgreSQL) costs only the note, not the start.
 */
function leaveRunNote(config: Config, location: string, log: Logger): () => void {
  try {
    return writeRunNote(config.dataDir, { database: 'postgres', location });
  } catch (err) {
    log.warn(
      { dataDir: config.dataDir, err: (err as Error).message },
      'could not leave the run note for the CLI in the data directory',
    );
    return () => undefined;
  }
}

/**
 * A database that is not up yet (container start order, a restart) is waited
 * for with a clear log line per attempt; any other failure (bad credentials,
 * missing database, a pooler that refuses fleetgate's startup parameters) ends
 * the start at once.
 */
async function waitForDatabase(database: DatabaseHandle, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await sql`select 1`.execute(database.db);
      return;
    } catch (err) {
      // A pooler refusing our startup parameters is not down: the CLI's error line says what to set.
      if (!isDatabaseUnavailable(err) || isPoolerRefusingOptions(err)) throw err;
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

/**
 * Stops accepting connections, lets requests in flight finish, closes each
 * keep-alive connection as soon as it is idle, and after `timeoutMs` cuts
 * what is left: those uploads' transactions roll back, nothing partial stays.
 */
function drainHttpServer(
  server: Listener['server'],
  timeoutMs: number,
  log: Logger,
): Promise<void> {
  return new Promise((resolve) => {
    const started = Date.now();
    log.info({ timeoutMs }, 'draining: accepting no new connections, finishing requests in flight');
    const idle = setInterval(() => server.closeIdleConnections(), 100);
    const deadline = setTimeout(() => {
      log.warn({ timeoutMs }, 'drain deadline reached: cutting the requests still in flight');
      server.closeAllConnections();
    }, timeoutMs);
    server.close(() => {
      clearInterval(idle);
      clearTimeout(deadline);
      log.info({ ms: Date.now() - started }, 'drained');
      resolve();
    });
    server.closeIdleConnections();
  });
}
