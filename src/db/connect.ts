import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { PgliteSingleConnectionPool } from './pglite-pool.js';
import { PreparingClient, UnnamedClient } from './prepared-statements.js';
import type { Database } from './schema.js';

export type DatabaseKind = 'postgres' | 'embedded';

export interface DatabaseHandle {
  readonly db: Kysely<Database>;
  readonly kind: DatabaseKind;
  /** Where the data lives, for log lines: a redacted URL or a directory. */
  readonly location: string;
  /** The pool behind `db` on a real Postgres: the COPY write path needs raw clients. */
  readonly pool?: pg.Pool;
  /**
   * A one-connection database for partition DDL, so that creating a partition
   * never waits for a pool that uploads holding a connection have drained.
   * The same as `db` on the embedded database.
   */
  readonly ddl: Kysely<Database>;
  close(): Promise<void>;
}

export async function openDatabase(config: Config, log: Logger): Promise<DatabaseHandle> {
  return config.databaseUrl
    ? openPostgres(
        config.databaseUrl,
        config.dbPoolSize,
        config.timeouts.dbAcquireMs,
        config.dbPooler,
        log,
      )
    : openEmbedded(config.dataDir, config.timeouts.dbAcquireMs);
}

function openPostgres(
  url: string,
  poolSize: number,
  acquireTimeoutMs: number,
  pooler: Config['dbPooler'],
  log: Logger,
): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // With every connection busy (slow uploads), a request waits at most this
    // long and then gets a 503 with Retry-After instead of hanging.
    connectionTimeoutMillis: acquireTimeoutMs,
    // PgBouncer (1.18) refuses the `options` startup parameter. In session mode
    // a connection keeps its server connection for life, so a SET once it is
    // open does the same; in transaction mode it would hold for one transaction
    // on one server connection: there the commit mode is the server's (or the
    // role's) default, which checkDurability reports at start.
    ...(pooler === 'off' ? { options: durableSessionOptions(url) } : {}),
    ...(pooler === 'session'
      ? {
          onConnect: async (client: pg.ClientBase) => {
            await client.query('set synchronous_commit to on');
          },
        }
      : {}),
    // Hot statements (the device lookup) go out prepared: see prepared-statements.ts.
    // A transaction-mode pooler runs each transaction on any server connection,
    // where a statement prepared on another is unknown: everything goes unnamed.
    Client: pooler === 'transaction' ? UnnamedClient : PreparingClient,
  });
  // An idle client that loses its server (restart, network) emits 'error' on
  // the pool; unhandled, that would crash the process. The pool drops the
  // client and the next checkout opens a fresh connection.
  pool.on('error', (err) => log.warn({ err: err.message }, 'idle database connection lost'));
  // The pool listens only while a client is idle. A checked-out client (an
  // upload between two batches) whose server goes away would emit an
  // unhandled 'error' and crash the process; with this listener its next
  // query fails instead (a 503), and the pool discards it on release.
  pool.on('connect', (client) =>
    client.on('error', (err) => log.warn({ err: err.message }, 'database connection lost')),
  );
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const ddlPool = new pg.Pool({ connectionString: url, max: 1 });
  ddlPool.on('error', (err) => log.warn({ err: err.message }, 'idle database connection lost'));
  const ddl = new Kysely<Database>({ dialect: new PostgresDialect({ pool: ddlPool }) });
  return {
    db,
    kind: 'postgres',
    location: redactUrl(url),
    pool,
    ddl,
    close: async () => {
      await ddl.destroy();
      await db.destroy();
    },
  };
}

async function openEmbedded(dataDir: string, acquireTimeoutMs: number): Promise<DatabaseHandle> {
  const dir = path.join(dataDir, 'pgdata');
  restrictEmbeddedDataDir(dir);
  // Loaded only for the embedded database: a server on PostgreSQL never pays
  // for PGlite's code in its resting memory.
  const { PGlite } = await import('@electric-sql/pglite');
  const pglite = await PGlite.create(dir);
  // A first start unpacks a fresh cluster with its own modes (0666): fix it too.
  restrictEmbeddedDataDir(dir);
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: new PgliteSingleConnectionPool(pglite, acquireTimeoutMs),
    }),
  });
  return { db, kind: 'embedded', location: dir, ddl: db, close: () => db.destroy() };
}

/**
 * The embedded database's files (catalogs, WAL, every table) are readable and
 * writable by the owner only: directories 0700, files 0600. PGlite creates its
 * files with the process umask, so the umask is narrowed to 077 for the rest of
 * the process (fleetgate creates no file that others must read; the nginx
 * socket is chmod-ed explicitly), and whatever an older version or a loose
 * umask left behind (and what PGlite unpacks on a first start, 0666) is fixed
 * at start.
 */
export function restrictEmbeddedDataDir(dir: string): void {
  process.umask(process.umask() | 0o077);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fix = (target: string) => {
    const stat = fs.lstatSync(target);
    if (stat.isSymbolicLink()) return;
    if (stat.isDirectory()) {
      if ((stat.mode & 0o777) !== 0o700) fs.chmodSync(target, 0o700);
      for (const entry of fs.readdirSync(target)) fix(path.join(target, entry));
    } else if ((stat.mode & 0o777) !== 0o600) {
      fs.chmodSync(target, 0o600);
    }
  };
  fix(dir);
}

/**
 * An upload answered 200 must survive a crash of the database server, so every
 * session of fleetgate commits synchronously (WAL flushed before COMMIT
 * returns), whatever the server, database or role default says. Options given
 * in the URL are kept; ours come last and win.
 */
export function durableSessionOptions(url: string): string {
  let fromUrl = '';
  try {
    fromUrl = new URL(url).searchParams.get('options') ?? '';
  } catch {
    // pg reports an unparseable URL itself when it connects.
  }
  return `${fromUrl} -c synchronous_commit=on`.trim();
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}
